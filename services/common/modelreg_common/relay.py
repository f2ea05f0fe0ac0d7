"""A failed call to another modelreg service, as the error this service answers with.

A service calling another re-raises what it got, so the original caller sees the precise status
(e.g. FAILED_PRECONDITION: VERSION_SEALED) instead of INTERNAL. Only the statuses a modelreg
service answers on purpose are passed on, with their reason, field and ErrorInfo metadata (e.g.
the two paths of a MANIFEST_PATH_CONFLICT: the caller would see them calling that service
itself); the other service being unreachable or too slow is UNAVAILABLE here, and anything
else (a bug over there) is INTERNAL here.
"""

from __future__ import annotations

import grpc
from modelreg_api import errors

_PASSED_ON = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def relayed_error(exc: grpc.RpcError) -> errors.RegistryError:
    """The error to raise for a failed call to another modelreg service."""
    received = errors.from_rpc_error(exc)
    reason = received.reason or None  # none received: the class's own
    if received.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable(f"a registry service is unavailable: {received.message}", reason=reason)
    if isinstance(received, errors.InvalidArgument):
        return errors.InvalidArgument(received.field, received.description, reason=reason)
    if received.code in _PASSED_ON:
        return type(received)(received.message, reason=reason, metadata=received.metadata)
    return errors.RegistryError(received.message, reason=reason)
