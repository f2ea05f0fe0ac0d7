"""The download protocol: streaming one file of a version into the cache, verified and resumable.

`ArtifactService.DownloadFile` takes an `offset`, so a download continues where the bytes on
disk end: after a dropped connection within one call (retried with backoff), and after the
process died (the partial file stays in the cache). The SHA-256 is computed over the whole
file, resumed prefix included, and compared with the manifest before the blob is committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

import grpc
from modelreg_api import wire
from modelreg_api.names import ModelVersionName
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import model_pb2

from modelreg.cache import BlobCache, PartialBlob
from modelreg.connection import Connection
from modelreg.errors import IntegrityError, Unavailable, from_rpc_error
from modelreg.progress import TransferProgress
from modelreg.retries import with_retries

_HASH_BUFFER = 4 * 1024 * 1024


class Downloader:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._settings = connection.settings

    async def download(
        self,
        version: ModelVersionName,
        file: model_pb2.ModelFile,
        cache: BlobCache,
        progress: TransferProgress,
    ) -> int:
        """Fetch `file` of `version` into `cache`; returns the bytes that crossed the network."""
        with cache.partial(file.sha256) as partial:
            hasher, offset = await asyncio.to_thread(_hash_prefix, partial, file.size_bytes)
            progress.advance(offset)
            received = await self._fetch(
                version=version, file=file, partial=partial, hasher=hasher, offset=offset, progress=progress
            )
            if hasher.hexdigest() == file.sha256:
                await asyncio.to_thread(cache.commit, partial, file.sha256)
                return received
            # A resumed prefix could itself be damaged (a disk error, a file edited by hand):
            # discard it and fetch the whole file once more before calling the server's bytes bad.
            await asyncio.to_thread(cache.discard, partial)
            progress.advance(-file.size_bytes)
            if offset > 0:
                hasher = hashlib.sha256()
                received += await self._fetch(
                    version=version, file=file, partial=partial, hasher=hasher, offset=0, progress=progress
                )
                if hasher.hexdigest() == file.sha256:
                    await asyncio.to_thread(cache.commit, partial, file.sha256)
                    return received
                await asyncio.to_thread(cache.discard, partial)
            raise IntegrityError(
                f"{file.path}: received bytes hash to {hasher.hexdigest()}, "
                f"but the manifest of {version} records {file.sha256}",
                reason="DIGEST_MISMATCH",
            )

    async def _fetch(
        self,
        *,
        version: ModelVersionName,
        file: model_pb2.ModelFile,
        partial: PartialBlob,
        hasher: hashlib._Hash,
        offset: int,
        progress: TransferProgress,
    ) -> int:
        """Append bytes from `offset` to the end of the file; returns how many were received."""
        position = offset
        metadata = self._connection.call_metadata()

        async def attempt() -> None:
            nonlocal position
            if position == file.size_bytes:
                return
            request = art.DownloadFileRequest(model_version=str(version), path=file.path, offset=position)
            timeout = self._settings.stream_timeout(file.size_bytes - position)
            try:
                async for raw in self._connection.data.download_file(
                    request, timeout=timeout, metadata=metadata
                ):
                    data = _data_at(raw, version, file, position)
                    if not data:
                        continue
                    await asyncio.to_thread(_append, partial, hasher, data)
                    position += len(data)
                    progress.advance(len(data))
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc
            if position != file.size_bytes:
                raise IntegrityError(
                    f"{file.path}: the download ended at byte {position} of {file.size_bytes}",
                    reason="SIZE_MISMATCH",
                )

        await with_retries(
            self._settings.retry,
            attempt,
            on_retry=lambda error, delay: progress.retrying(file.path, error.message, delay),
        )
        return position - offset


def _data_of(
    raw: bytes, version: ModelVersionName, file: model_pb2.ModelFile
) -> tuple[int, memoryview | bytes]:
    """Offset and data of one DownloadFileResponse; the header (first message) is checked."""
    decoded = wire.decode_data(raw)
    if decoded is not None:
        return decoded
    message = art.DownloadFileResponse.FromString(raw)
    if message.HasField("file"):
        _check_header(version, file, message.file)
    return message.offset, message.data


def _data_at(
    raw: bytes, version: ModelVersionName, file: model_pb2.ModelFile, position: int
) -> memoryview | bytes:
    """The data of one DownloadFileResponse, which must continue the file exactly at `position`."""
    offset, data = _data_of(raw, version, file)
    if data and (offset != position or position + len(data) > file.size_bytes):
        raise IntegrityError(
            f"{file.path}: the server sent bytes {offset}..{offset + len(data)} "
            f"while {position} was expected of {file.size_bytes}",
            reason="UNEXPECTED_OFFSET",
        )
    return data


def _check_header(version: ModelVersionName, wanted: model_pb2.ModelFile, got: model_pb2.ModelFile) -> None:
    # The download is by version number, never by alias, so the header must repeat the manifest.
    if (got.size_bytes, got.sha256) != (wanted.size_bytes, wanted.sha256):
        raise IntegrityError(
            f"{wanted.path}: the artifact service describes it as {got.size_bytes} bytes, sha256 "
            f"{got.sha256}, but the manifest of {version} says {wanted.size_bytes} bytes, sha256 "
            f"{wanted.sha256}",
            reason="MANIFEST_MISMATCH",
        )


def _hash_prefix(partial: PartialBlob, size_bytes: int) -> tuple[hashlib._Hash, int]:
    """The hash of what an earlier attempt already wrote, and where to continue."""
    hasher = hashlib.sha256()
    stream = partial.stream
    stream.seek(0, 2)
    if stream.tell() > size_bytes:  # not a prefix of this blob: start over
        stream.truncate(0)
    stream.seek(0)
    while data := stream.read(_HASH_BUFFER):
        hasher.update(data)
    return hasher, stream.tell()


def _append(partial: PartialBlob, hasher: hashlib._Hash, data: memoryview | bytes) -> None:
    partial.stream.write(data)
    hasher.update(data)


async def stream_file(
    connection: Connection, version: ModelVersionName, file: model_pb2.ModelFile
) -> AsyncIterator[bytes]:
    """`file`'s bytes as they arrive, checked against the manifest, stored nowhere.

    One chunk is always held back: it is released only once the size and SHA-256 of the whole
    file match, so a reader that relays the chunks (the web UI's download) never delivers a
    complete file with bad bytes; it sees `IntegrityError` instead of the end. A broken stream
    continues from the last byte received (DownloadFile takes an offset), with the client's retries.
    """
    hasher = hashlib.sha256()
    position = 0
    held = b""
    metadata = connection.call_metadata()
    policy = connection.settings.retry
    attempt = 1
    while position < file.size_bytes:
        request = art.DownloadFileRequest(model_version=str(version), path=file.path, offset=position)
        timeout = connection.settings.stream_timeout(file.size_bytes - position)
        try:
            async for raw in connection.data.download_file(request, timeout=timeout, metadata=metadata):
                data = _data_at(raw, version, file, position)
                if not data:
                    continue
                await asyncio.to_thread(hasher.update, data)
                position += len(data)
                if held:
                    yield held
                held = bytes(data)
            break
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if not isinstance(error, Unavailable) or attempt >= policy.attempts:
                raise error from exc
            await asyncio.sleep(random.uniform(0, policy.backoff(attempt)))  # noqa: S311 - jitter
            attempt += 1
    if position != file.size_bytes:
        raise IntegrityError(
            f"{file.path}: the download ended at byte {position} of {file.size_bytes}", reason="SIZE_MISMATCH"
        )
    if hasher.hexdigest() != file.sha256:
        raise IntegrityError(
            f"{file.path}: received bytes hash to {hasher.hexdigest()}, "
            f"but the manifest of {version} records {file.sha256}",
            reason="DIGEST_MISMATCH",
        )
    if held:
        yield held
