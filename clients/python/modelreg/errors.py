"""Exceptions raised by the SDK: one class per gRPC status, plus local integrity failures.

Every error the services return follows AIP-193: a status code, a message, and in the trailing
`grpc-status-details-bin` a `google.rpc.Status` with an `ErrorInfo` (the machine-readable
`reason`, e.g. `DIGEST_MISMATCH`) and, for bad input, a `BadRequest` naming the field. The SDK
keeps all of it on the exception, so callers branch on types and reasons, never on message text.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from modelreg import headers

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The ErrorInfo reason of a PERMISSION_DENIED caused by the caller's roles (docs/security.md).
ROLE_DENIED_REASON = "IAM_PERMISSION_DENIED"


class ModelregError(Exception):
    """Base class of everything the SDK raises on purpose."""

    def __init__(self, message: str, *, reason: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        return self.message


class RegistryError(ModelregError):
    """A call to a registry service failed; `code` is the gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        field: str = "",
        metadata: dict[str, str] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message, reason=reason, field=field)
        if code is not None:
            self.code = code
        self.metadata = dict(metadata or {})
        self.request_id = request_id


class InvalidArgument(RegistryError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RegistryError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RegistryError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RegistryError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RegistryError):
    """Someone else changed the resource first (etag mismatch); re-read and retry."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(RegistryError):
    code = grpc.StatusCode.OUT_OF_RANGE


class DataLoss(RegistryError):
    """The server found stored bytes that no longer match their digest."""

    code = grpc.StatusCode.DATA_LOSS


class Unavailable(RegistryError):
    """The service could not be reached, even after the retries the client is configured for."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RegistryError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(RegistryError):
    """The caller may not do this: a governance rule (`SELF_APPROVAL_NOT_ALLOWED`: four eyes), or
    its roles (`RoleDenied`)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class RoleDenied(PermissionDenied):
    """The caller's roles lack a permission (reason `IAM_PERMISSION_DENIED`): ask a namespace
    admin for a role that includes `permission` (e.g. `models.create`) on `resource`."""

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
    """No credential, or one the registry does not accept: `problem` says why (`missing`,
    `malformed`, `unknown`, `expired`, `revoked`, `invalid_signature`, ...)."""

    code = grpc.StatusCode.UNAUTHENTICATED

    @property
    def problem(self) -> str:
        return self.metadata.get("problem", "")


class ResourceExhausted(RegistryError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Cancelled(RegistryError):
    code = grpc.StatusCode.CANCELLED


class Unimplemented(RegistryError):
    """The server is older than this client and does not have the method."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RegistryError):
    code = grpc.StatusCode.INTERNAL


class IntegrityError(ModelregError):
    """Bytes on this machine do not match the digest or size the registry recorded.

    Raised by downloads (with reason `DIGEST_MISMATCH` or `SIZE_MISMATCH`) before anything is
    placed under its final name.
    """


class UnsafeManifest(ModelregError):
    """A version's manifest names a path that cannot be written safely under the destination."""


class LocalFileError(ModelregError):
    """A local file or directory cannot be pushed (missing, empty, unreadable, bad path)."""


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


def from_rpc_error(exc: grpc.RpcError) -> RegistryError:
    """The typed exception for a failed call, with reason, field and request id from the trailers."""
    code: grpc.StatusCode = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message: str = (exc.details() if hasattr(exc, "details") else "") or code.name
    reason, field, request_id = "", "", ""
    metadata: dict[str, str] = {}
    trailers: Any = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    for key, value in trailers or ():
        if key == headers.REQUEST_ID and isinstance(value, str):
            request_id = value
        elif key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                    metadata = dict(info.metadata)
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
    kind = _BY_CODE.get(code, RegistryError)
    if kind is PermissionDenied and reason == ROLE_DENIED_REASON:
        kind = RoleDenied
    return kind(message, code=code, reason=reason, field=field, metadata=metadata, request_id=request_id)
