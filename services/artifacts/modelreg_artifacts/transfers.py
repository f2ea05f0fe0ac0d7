"""Uploads and downloads of model files: the artifact service's use cases.

The metadata service stays the source of truth for which files a version has; this module
only moves and verifies bytes, and records a file there once its bytes are safely stored.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelreg_common.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from modelregistry.v1 import model_pb2

from modelreg_artifacts.blobstore import BlobReader, S3BlobStore
from modelreg_artifacts.domain import DownloadRequest, StoredFile, UploadSpec
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.uploads import BlobWriter


@dataclass(frozen=True)
class Chunk:
    write_offset: int
    data: bytes
    finish_write: bool


class Transfers:
    def __init__(
        self,
        store: S3BlobStore,
        metadata: MetadataClient,
        *,
        part_bytes: int,
        parts_in_flight: int,
        download_chunk_bytes: int,
    ):
        self._store = store
        self._metadata = metadata
        self._part_bytes = part_bytes
        self._parts_in_flight = parts_in_flight
        self._download_chunk_bytes = download_chunk_bytes

    async def upload(self, spec: UploadSpec, chunks: AsyncIterator[Chunk]) -> StoredFile:
        version = await self._metadata.get_version(spec.model_version)
        if version.state != model_pb2.MODEL_VERSION_STATE_PENDING:
            raise FailedPrecondition(
                f"model version {spec.model_version} is sealed; files can be added only while it is PENDING",
                reason="VERSION_SEALED",
            )
        writer = BlobWriter(self._store, spec, self._part_bytes, self._parts_in_flight)
        try:
            finished = False
            async for chunk in chunks:
                if chunk.data:
                    await writer.write(chunk.write_offset, chunk.data)
                if chunk.finish_write:
                    finished = True
                    break
            if not finished:
                raise InvalidArgument(
                    "finish_write",
                    f"the stream ended after {writer.received} bytes without finish_write; nothing stored",
                )
            await writer.finish()
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        stored = StoredFile(spec.path, spec.size_bytes, spec.sha256, spec.content_type)
        await self._metadata.add_file(spec.model_version, stored)
        return stored

    async def open_download(
        self, request: DownloadRequest
    ) -> tuple[StoredFile, AsyncIterator[tuple[int, bytes]]]:
        """The file's manifest entry, and its bytes from `offset` as (offset, data) pieces."""
        version = await self._metadata.get_version(request.version)
        entry = next((f for f in version.files if f.path == request.path), None)
        if entry is None:
            raise NotFound(f"file {request.path!r} is not in model version {version.name}")
        file = StoredFile(entry.path, entry.size_bytes, entry.sha256, entry.content_type)
        if request.offset > file.size_bytes:
            raise OutOfRange(
                f"offset {request.offset} is past the end of {file.path!r} ({file.size_bytes} bytes)",
                reason="OFFSET_PAST_END",
            )
        remaining = file.size_bytes - request.offset
        length = remaining if request.limit == 0 else min(request.limit, remaining)
        return file, self._stream(file, request.offset, length)

    async def _stream(self, file: StoredFile, offset: int, length: int) -> AsyncIterator[tuple[int, bytes]]:
        if length == 0:
            return
        # A whole-file read is re-hashed on the way out: a blob damaged at rest ends the stream
        # with DATA_LOSS instead of being served as good.
        hasher = hashlib.sha256() if offset == 0 and length == file.size_bytes else None
        reader = await self._store.open(file.sha256, offset, length)
        try:
            position, end = offset, offset + length
            pending = asyncio.ensure_future(self._store.run(self._read, reader, hasher))
            while position < end:
                data = await pending
                if not data:
                    raise DataLoss(
                        f"blob of {file.path!r} ended at byte {position}, expected {end}",
                        reason="BLOB_TRUNCATED",
                    )
                if position + len(data) < end:  # read ahead while the caller sends this piece
                    pending = asyncio.ensure_future(self._store.run(self._read, reader, hasher))
                yield position, data
                position += len(data)
        finally:
            if not pending.done():
                pending.cancel()
            await self._store.run(reader.close)
        if hasher is not None and hasher.hexdigest() != file.sha256:
            raise DataLoss(
                f"stored bytes of {file.path!r} hash to {hasher.hexdigest()}, not the recorded {file.sha256}",
                reason="BLOB_CORRUPT",
            )

    def _read(self, reader: BlobReader, hasher: hashlib._Hash | None) -> bytes:
        data = reader.read(self._download_chunk_bytes)
        if hasher is not None:
            hasher.update(data)
        return data
