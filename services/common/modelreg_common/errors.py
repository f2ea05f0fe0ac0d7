"""Domain errors raised by service code. Only `modelreg_common.status` knows gRPC codes.

Each error carries an AIP-193 `reason` (UPPER_SNAKE_CASE), a message meant for a person, and,
for invalid input, the request field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping


class RegistryError(Exception):
    reason = "REGISTRY_ERROR"

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})


class InvalidArgument(RegistryError):
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        field: str,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ):
        super().__init__(f"{field}: {message}", reason=reason, metadata=metadata)
        self.field = field
        self.description = message


class NotFound(RegistryError):
    reason = "NOT_FOUND"


class AlreadyExists(RegistryError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(RegistryError):
    reason = "FAILED_PRECONDITION"


class PermissionDenied(RegistryError):
    """The actor may not do this (e.g. approve a version it created: the four-eyes rule)."""

    reason = "PERMISSION_DENIED"


class Unauthenticated(RegistryError):
    """No credential, or one that does not prove an identity (unknown, expired, revoked, forged)."""

    reason = "UNAUTHENTICATED"


class Aborted(RegistryError):
    """A concurrent writer won: an etag mismatch or a lost race the caller may retry."""

    reason = "ABORTED"


class OutOfRange(RegistryError):
    reason = "OUT_OF_RANGE"


class DataLoss(RegistryError):
    """Stored bytes no longer match their recorded digest."""

    reason = "DATA_LOSS"


class Unavailable(RegistryError):
    """A dependency (database, object store, another service) cannot be reached right now."""

    reason = "UNAVAILABLE"
