"""Objects in S3-compatible storage: the bytes of uploads, one object per upload session.

Every key is `blobs/<upload id>`: a UUID chosen by the service, never user text. Which object
holds which digest is the blob index's business (`modelreg_artifacts.store`), so an object is
written once and never overwritten, and an object becomes a blob only after its bytes were
verified. This module is what the use cases rely on; `s3` implements it with the `minio` SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

OBJECT_PREFIX = "blobs/"


def object_key(upload_id: str) -> str:
    return f"{OBJECT_PREFIX}{upload_id}"


@dataclass(frozen=True)
class PendingMultipart:
    key: str
    multipart_id: str
    initiated: datetime | None


class ObjectReader(Protocol):
    """An open ranged read of an object. Blocking: call it through `ObjectStore.run`."""

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end."""
        ...

    def close(self) -> None: ...


class ObjectStore(Protocol):
    """Objects and multipart uploads in one bucket.

    Every byte written carries a checksum that the server verifies (a mismatch stores nothing),
    and the caller computes it as the bytes arrive (`crc32c=`). An unreachable or overloaded
    server raises `Unavailable` (retry later).
    """

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking work on the store's bounded I/O threads (reads, and hashing beside them)."""
        ...

    async def put(
        self, key: str, data: bytes | bytearray | memoryview, content_type: str, *, crc32c: int
    ) -> None:
        """Store a whole object; `crc32c` is the CRC32C of `data`."""
        ...

    async def start_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload to `key`; returns its id."""
        ...

    async def upload_part(
        self, key: str, multipart_id: str, number: int, data: bytes | bytearray | memoryview, *, crc32c: int
    ) -> str:
        """Store one part (`crc32c` is its CRC32C); returns its ETag, which completion checks."""
        ...

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[tuple[int, str]]) -> bool:
        """Complete the upload from (number, ETag) parts; False when it no longer exists."""
        ...

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drop an upload's parts; an upload that no longer exists is not an error."""
        ...

    async def pending_multiparts(self) -> list[PendingMultipart]:
        """Incomplete multipart uploads under OBJECT_PREFIX (to abort the ones nobody tracks)."""
        ...

    async def open(self, key: str, offset: int, length: int) -> ObjectReader:
        """Read `length` bytes of an object from `offset`."""
        ...

    async def digest_of(self, key: str) -> tuple[int, str] | None:
        """Size and SHA-256 of a stored object, read back in full; None when it is missing."""
        ...

    async def delete(self, key: str) -> None: ...
