"""A store that cannot be reached is an outage, not a bug: the interceptor answers UNAVAILABLE.

PyMongo reports an unreachable or unresponsive database with the `ConnectionFailure` family:
`ServerSelectionTimeoutError` (no server answered within serverSelectionTimeoutMS), `AutoReconnect`
(a connection dropped mid-operation), `NetworkTimeout` (no reply within the socket timeout) and
`WaitQueueTimeoutError` (the connection pool stayed exhausted). Operations cut off by a client-side
timeout (`PyMongoError.timeout`) belong there too. Anything else from PyMongo (an
`OperationFailure` from a malformed command, a duplicate key nobody handled) is a bug: INTERNAL.

Clients retry UNAVAILABLE (with backoff), so a short outage costs them a delay, not a failure.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError

# The ErrorInfo reason a caller sees for every database outage, on every RPC of both services.
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"

_MAX_CHAIN = 8  # causes followed before giving up (a cycle cannot hold us)


def store_outage(exc: BaseException) -> PyMongoError | None:
    """The PyMongo error that makes `exc` a database outage, or None.

    Looks through the causes too: a store may have wrapped the driver's error in one of its own.
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return None
        if isinstance(seen, ConnectionFailure) or (isinstance(seen, PyMongoError) and seen.timeout):
            return seen
        if isinstance(seen, BaseExceptionGroup):
            for member in seen.exceptions:
                found = store_outage(member)
                if found is not None:
                    return found
            return None
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def outage_message(cause: PyMongoError) -> str:
    """What the caller reads: what failed and what to do, never the driver's text (it names
    hosts, socket paths and topology)."""
    kind = "did not answer in time" if cause.timeout else "cannot be reached"
    return f"the registry's database {kind} right now; retry later"
