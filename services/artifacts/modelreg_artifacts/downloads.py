"""Downloads and on-demand verification: reading files of a version back, checking every byte.

The metadata service says which files a version has (path -> size, SHA-256); the blob index
says which object holds a digest. A whole-file read is re-hashed on the way out, so a blob
damaged at rest ends the stream with DATA_LOSS instead of being served as good.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelreg_api.errors import DataLoss, NotFound, OutOfRange, quoted
from modelreg_api.names import AliasName, ModelVersionName

from modelreg_artifacts.domain import DownloadRequest, StoredFile
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.metrics import DOWNLOADED_BYTES
from modelreg_artifacts.objects import ObjectStore
from modelreg_artifacts.store import BlobIndex

# Verification re-reads whole blobs; a few at a time keeps it from starving uploads.
VERIFY_CONCURRENCY = 2


class BlobProblem(enum.Enum):
    MISSING = "MISSING"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"


@dataclass(frozen=True)
class FileCheck:
    file: StoredFile
    problem: BlobProblem
    detail: str


@dataclass(frozen=True)
class VersionCheck:
    model_version: str
    checked_files: int
    checked_bytes: int
    problems: list[FileCheck]


class Downloads:
    def __init__(self, objects: ObjectStore, blobs: BlobIndex, metadata: MetadataClient, *, chunk_bytes: int):
        self._objects = objects
        self._blobs = blobs
        self._metadata = metadata
        self._chunk_bytes = chunk_bytes

    async def open(self, request: DownloadRequest) -> tuple[StoredFile, AsyncIterator[tuple[int, bytes]]]:
        """The file's manifest entry, and its bytes from `offset` as (offset, data) pieces."""
        version = await self._metadata.get_version(request.version)
        entry = next((f for f in version.files if f.path == request.path), None)
        if entry is None:
            raise NotFound(f"file {quoted(request.path)} is not in model version {version.name}")
        file = StoredFile(entry.path, entry.size_bytes, entry.sha256, entry.content_type)
        if request.offset > file.size_bytes:
            raise OutOfRange(
                f"offset {request.offset} is past the end of {quoted(file.path)} ({file.size_bytes} bytes)",
                reason="OFFSET_PAST_END",
            )
        blob = await self._blobs.get(file.sha256)
        if blob is None:
            raise DataLoss(f"the blob {file.sha256} of {file.path!r} is not stored", reason="BLOB_MISSING")
        remaining = file.size_bytes - request.offset
        length = remaining if request.limit == 0 else min(request.limit, remaining)
        return file, self._stream(file, blob.object_key, request.offset, length)

    async def _stream(
        self, file: StoredFile, key: str, offset: int, length: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        if length == 0:
            return
        # Two things overlap: a worker reads piece n+1 from S3 and hashes it (pieces are read in
        # order, one job at a time, so the hash runs over the file in order), and the event loop
        # sends piece n. One hand-off per piece: each costs the loop a wake-up.
        hasher = hashlib.sha256() if offset == 0 and length == file.size_bytes else None
        reader = await self._objects.open(key, offset, length)

        def read_piece() -> bytes:
            data = reader.read(self._chunk_bytes)
            if hasher is not None:
                hasher.update(data)
            return data

        reading = asyncio.ensure_future(self._objects.run(read_piece))
        try:
            position, end = offset, offset + length
            while position < end:
                data = await reading
                if not data:
                    raise DataLoss(
                        f"blob of {file.path!r} ended at byte {position}, expected {end}",
                        reason="BLOB_TRUNCATED",
                    )
                if position + len(data) < end:
                    reading = asyncio.ensure_future(self._objects.run(read_piece))
                DOWNLOADED_BYTES.inc(len(data))
                yield position, data
                position += len(data)
        finally:
            if not reading.done():
                reading.cancel()
            await self._objects.run(reader.close)
        if hasher is not None and hasher.hexdigest() != file.sha256:
            raise DataLoss(
                f"stored bytes of {file.path!r} hash to {hasher.hexdigest()}, not the recorded {file.sha256}",
                reason="BLOB_CORRUPT",
            )

    async def verify(self, ref: ModelVersionName | AliasName) -> VersionCheck:
        """Re-read every blob of a version from object storage; report each one that does not match."""
        version = await self._metadata.get_version(ref)
        files = [StoredFile(f.path, f.size_bytes, f.sha256, f.content_type) for f in version.files]
        limit = asyncio.Semaphore(VERIFY_CONCURRENCY)

        async def check(file: StoredFile) -> tuple[int, FileCheck | None]:
            async with limit:
                blob = await self._blobs.get(file.sha256)
                found = await self._objects.digest_of(blob.object_key) if blob is not None else None
            if found is None:
                return 0, FileCheck(file, BlobProblem.MISSING, "no stored blob has this SHA-256")
            size, digest = found
            if size != file.size_bytes:
                detail = f"the stored blob has {size} bytes, the manifest records {file.size_bytes}"
                return size, FileCheck(file, BlobProblem.SIZE_MISMATCH, detail)
            if digest != file.sha256:
                return size, FileCheck(
                    file, BlobProblem.DIGEST_MISMATCH, f"the stored bytes hash to {digest}"
                )
            return size, None

        results = await asyncio.gather(*(check(file) for file in files))
        return VersionCheck(
            model_version=version.name,
            checked_files=len(files),
            checked_bytes=sum(size for size, _ in results),
            problems=[problem for _, problem in results if problem is not None],
        )
