"""Exceptions raised by the SDK: one class per gRPC status, plus local integrity failures.

Every error the services return follows AIP-193: a status code, a message, and in the trailing
`grpc-status-details-bin` a `google.rpc.Status` with an `ErrorInfo` (the machine-readable
`reason`, e.g. `DIGEST_MISMATCH`) and, for bad input, a `BadRequest` naming the field. The SDK
keeps all of it on the exception, so callers branch on types and reasons, never on message text.

The status classes and their decoder are the API's (`modelreg_api.errors`, the same classes the
services raise); they are importable from here. The local failures below happen on this machine
and have no status.
"""

from __future__ import annotations

from modelreg_api.errors import (
    ROLE_DENIED_REASON,
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ModelregError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    RegistryError,
    ResourceExhausted,
    RoleDenied,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    from_rpc_error,
)

__all__ = [
    "ROLE_DENIED_REASON",
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "DestinationInTheWay",
    "FailedPrecondition",
    "IntegrityError",
    "Internal",
    "InvalidArgument",
    "LocalFileError",
    "ModelregError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "RegistryError",
    "ResourceExhausted",
    "RoleDenied",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnsafeManifest",
    "from_rpc_error",
]


class IntegrityError(ModelregError):
    """Bytes on this machine do not match the digest or size the registry recorded.

    Raised by downloads (with reason `DIGEST_MISMATCH` or `SIZE_MISMATCH`) before anything is
    placed under its final name.
    """


class UnsafeManifest(ModelregError):
    """A version's manifest names a path that cannot be written safely under the destination."""


class LocalFileError(ModelregError):
    """A local file or directory cannot be pushed (missing, empty, unreadable, bad path)."""


class DestinationInTheWay(ModelregError):
    """A pull's destination holds other files (or directories) under paths the pull must write.

    Nothing was downloaded or changed; `paths` lists every local path in the way. Pull into an
    empty directory, or pass `force=True` (`--force`) to replace exactly those paths.
    """

    reason = "DESTINATION_NOT_EMPTY"

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths
