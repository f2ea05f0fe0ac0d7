"""Per-call context: the request id and the authenticated caller, bound by the interceptor.

Domain code reads the actor from here (every write path records it), so no use case takes the
caller as an argument it could get wrong.
"""

from __future__ import annotations

from contextvars import ContextVar

from modelreg_common.identity.caller import SYSTEM_CALLER, Caller

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_caller: ContextVar[Caller] = ContextVar("caller", default=SYSTEM_CALLER)


def current_request_id() -> str:
    return _request_id.get()


def current_caller() -> Caller:
    """The authenticated caller; outside an RPC (retention, start-up), the registry itself."""
    return _caller.get()


def current_actor() -> str:
    return _caller.get().principal


def bind_call(request_id: str, caller: Caller) -> None:
    _request_id.set(request_id)
    _caller.set(caller)
