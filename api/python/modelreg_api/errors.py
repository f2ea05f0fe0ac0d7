"""The registry's errors, one hierarchy for the services and the SDK, and their AIP-193 codec.

A failed call carries a gRPC status code, a message meant for a person and, in the trailer
`grpc-status-details-bin`, a `google.rpc.Status` whose details are an `ErrorInfo` (the
machine-readable `reason` in UPPER_SNAKE_CASE, the domain, metadata) and, for invalid input, a
`BadRequest` naming the request field at fault.

- Services raise these from domain code, choosing the class (what went wrong) and a precise
  reason (`VERSION_SEALED`, `DIGEST_MISMATCH`, ...); their error interceptor alone turns one into
  a status, with `rich_status`. Anything that is not a `RegistryError` is a bug: INTERNAL.
- Clients get them back from a failed call, with `from_rpc_error`: the class chosen by status
  code, with reason, field, metadata and the request id, so callers branch on types and reasons,
  never on message text.

Each class stands for one status code (`code`); its default `reason` is the code's name, so an
error raised without a reason still has one on the wire. The SDK's local failures (a digest
mismatch on this machine, an unsafe manifest) are `ModelregError`s without a status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from modelreg_api import headers

# ErrorInfo.domain of every error a modelreg service answers with.
DOMAIN = "modelreg.dev"
# The ErrorInfo reason of a PERMISSION_DENIED caused by the caller's roles (docs/security.md).
ROLE_DENIED_REASON = "IAM_PERMISSION_DENIED"

# How much of a received value an error quotes: enough to recognise it, never all of it (a 10 KB
# id echoed in the message, the BadRequest and the ErrorInfo would exceed the trailer limit and
# the caller would see RESOURCE_EXHAUSTED instead of the error).
MAX_QUOTED_CHARS = 64
# What a status may carry at most, whatever a raiser put in it: the message (and a field
# violation's description), and each ErrorInfo metadata value.
MAX_MESSAGE_CHARS = 1024
MAX_METADATA_CHARS = 256


def quoted(value: object) -> str:
    """A received value as an error message quotes it: repr() of at most MAX_QUOTED_CHARS
    characters, and how long it really was when it was cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_QUOTED_CHARS:
        return repr(text)
    return f"{text[:MAX_QUOTED_CHARS]!r}... ({len(text)} characters)"


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelregError(Exception):
    """Base class of everything modelreg raises on purpose."""

    reason: str = ""

    def __init__(self, message: str, *, reason: str | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.field = field

    def __str__(self) -> str:
        return self.message


class RegistryError(ModelregError):
    """An error with a gRPC status: what a service answers with, what a failed call raises.

    `code` is the status; `reason` and `metadata` are the ErrorInfo's; `field` names the request
    field at fault (BadRequest); `request_id` is the failed call's id, as the services logged it
    (set on the client side). This class itself is INTERNAL: on a server, a failure with no more
    precise status; on a client, a status with no class of its own (then `code` says which).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason = "REGISTRY_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        field: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message, reason=reason, field=field)
        if code is not None:
            self.code = code
        self.metadata = dict(metadata or {})
        self.request_id = request_id


class InvalidArgument(RegistryError):
    """Invalid input: `field` is the request field at fault, `description` what is wrong with it.

    The message is `"{field}: {description}"` unless a received one is given.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        field: str,
        description: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        message: str | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(
            f"{field}: {description}" if message is None else message,
            reason=reason,
            field=field,
            metadata=metadata,
            request_id=request_id,
        )
        self.description = description


class NotFound(RegistryError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(RegistryError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(RegistryError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Aborted(RegistryError):
    """Someone else changed the resource first (an etag mismatch, a lost race): re-read, retry."""

    code = grpc.StatusCode.ABORTED
    reason = "ABORTED"


class OutOfRange(RegistryError):
    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class DataLoss(RegistryError):
    """Stored bytes no longer match their recorded digest."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "DATA_LOSS"


class Unavailable(RegistryError):
    """A service, or a dependency of one (database, object store, another service), cannot be
    reached right now; a client gets this after the retries it is configured for."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(RegistryError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class PermissionDenied(RegistryError):
    """The caller may not do this: a governance rule (`SELF_APPROVAL_NOT_ALLOWED`: four eyes), or
    its roles (`RoleDenied`)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class RoleDenied(PermissionDenied):
    """The caller's roles lack a permission (reason `IAM_PERMISSION_DENIED`): ask a namespace
    admin for a role that includes `permission` (e.g. `models.create`) on `resource`."""

    reason = ROLE_DENIED_REASON

    @property
    def permission(self) -> str:
        return self.metadata.get("permission", "")

    @property
    def resource(self) -> str:
        return self.metadata.get("resource", "")

    @property
    def principal(self) -> str:
        return self.metadata.get("principal", "")


class Unauthenticated(RegistryError):
    """No credential, or one the registry does not accept (unknown, expired, revoked, forged):
    `problem` says why (`missing`, `malformed`, `unknown`, `expired`, `revoked`, ...)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"

    @property
    def problem(self) -> str:
        return self.metadata.get("problem", "")


class ResourceExhausted(RegistryError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class Cancelled(RegistryError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class Unimplemented(RegistryError):
    """The server is older than the client and does not have the method."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


class Internal(RegistryError):
    """A bug in the service; its log has the traceback under the request id."""

    reason = "INTERNAL"


_BY_CODE: dict[grpc.StatusCode, type[RegistryError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        DataLoss,
        Unavailable,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Cancelled,
        Unimplemented,
        Internal,
    )
}


def rich_status(error: RegistryError) -> tuple[grpc.StatusCode, str, bytes]:
    """For a server: the code, the message and the serialized google.rpc.Status carrying
    ErrorInfo (and BadRequest for invalid input), to send in the `grpc-status-details-bin`
    trailer. Texts are capped (MAX_MESSAGE_CHARS, MAX_METADATA_CHARS) so a status always fits
    in the trailers, whatever its raiser quoted."""
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    metadata = {key: _capped(value, MAX_METADATA_CHARS) for key, value in error.metadata.items()}
    message = _capped(error.message, MAX_MESSAGE_CHARS)
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    details.append(info)
    if isinstance(error, InvalidArgument):
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=_capped(error.field, MAX_METADATA_CHARS),
                        description=_capped(error.description, MAX_MESSAGE_CHARS),
                    )
                ]
            )
        )
        details.append(bad)
    status = status_pb2.Status(code=error.code.value[0], message=message, details=details)
    return error.code, message, status.SerializeToString()


def from_rpc_error(exc: grpc.RpcError) -> RegistryError:
    """For a client: the typed exception for a failed call, with reason, field, metadata and
    request id from the trailers. An empty `reason` means the status carried no ErrorInfo (it did
    not come from a modelreg service: a proxy, or gRPC itself)."""
    code: grpc.StatusCode = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message: str = (exc.details() if hasattr(exc, "details") else "") or code.name
    reason, field, request_id = "", "", ""
    metadata: dict[str, str] = {}
    trailers: Any = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    for key, value in trailers or ():
        if key == headers.REQUEST_ID and isinstance(value, str):
            request_id = value
        elif key == headers.STATUS_DETAILS and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                    metadata = dict(info.metadata)
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        description = message.removeprefix(f"{field}: ") if field else message
        return InvalidArgument(
            field, description, message=message, reason=reason, metadata=metadata, request_id=request_id
        )
    kind = _BY_CODE.get(code, RegistryError)
    if kind is PermissionDenied and reason == ROLE_DENIED_REASON:
        kind = RoleDenied
    return kind(message, code=code, reason=reason, field=field, metadata=metadata, request_id=request_id)
