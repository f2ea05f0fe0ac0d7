"""The one mapping from domain errors to gRPC status codes with AIP-193 details."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from modelreg_common import errors

DOMAIN = "modelreg.dev"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES: list[tuple[type[errors.RegistryError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.DataLoss, grpc.StatusCode.DATA_LOSS),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def grpc_code(error: errors.RegistryError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(error: errors.RegistryError) -> tuple[grpc.StatusCode, str, bytes]:
    """The code, the message and the serialized google.rpc.Status carrying ErrorInfo/BadRequest."""
    code = grpc_code(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata))
    details.append(info)
    if isinstance(error, errors.InvalidArgument):
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=error.field, description=error.description
                    )
                ]
            )
        )
        details.append(bad)
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return code, error.message, status.SerializeToString()


def error_from_rpc(exc: grpc.aio.AioRpcError) -> errors.RegistryError:
    """The domain error behind a failed call to another modelreg service, reason and field kept.

    A service calling another service re-raises what it got, so the original caller sees the
    precise status (e.g. FAILED_PRECONDITION: VERSION_SEALED) instead of INTERNAL.
    """
    code = exc.code()
    message = exc.details() or code.name
    reason, field = None, ""
    trailers: Any = exc.trailing_metadata() or ()
    for key, value in trailers:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        prefix = f"{field}: "
        return errors.InvalidArgument(field, message.removeprefix(prefix), reason=reason)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable(f"a registry service is unavailable: {message}", reason=reason)
    for kind, kind_code in _CODES:
        if kind_code is code:
            return kind(message, reason=reason)
    return errors.RegistryError(message, reason=reason)
