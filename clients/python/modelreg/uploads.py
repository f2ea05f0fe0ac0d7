"""The upload protocol: the one module that knows how bytes of a file reach the artifact service.

Today that is `ArtifactService.UploadFile`, a client stream (spec, chunks with their write
offsets, `finish_write`) in which the server hashes everything and adds the file to the version
only when size and SHA-256 match the spec. A broken stream leaves nothing behind on the server,
so a retry starts the file over. Everything above this module (push, resume of an interrupted
push at file granularity, progress) does not depend on how the bytes travel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

import grpc
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import model_pb2

from modelreg.connection import Connection
from modelreg.errors import from_rpc_error
from modelreg.local_files import LocalFile
from modelreg.names import ModelVersionName
from modelreg.progress import Outcome, TransferProgress
from modelreg.retries import with_retries


@dataclass(frozen=True, slots=True)
class UploadReport:
    file: model_pb2.ModelFile
    outcome: Outcome
    # Bytes of the file sent by this call.
    sent_bytes: int


class Uploader:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._settings = connection.settings

    async def upload(
        self, version: ModelVersionName, file: LocalFile, progress: TransferProgress
    ) -> UploadReport:
        """Store `file` in the PENDING `version`; reports its manifest entry once verified."""
        metadata = self._connection.call_metadata()
        timeout = self._settings.stream_timeout(file.size_bytes)
        sent = 0

        def count(nbytes: int) -> None:
            nonlocal sent
            sent += nbytes
            progress.advance(nbytes)

        async def attempt() -> model_pb2.ModelFile:
            nonlocal sent
            progress.advance(-sent)  # a retry sends the whole file again
            sent = 0
            try:
                return await self._connection.artifacts.UploadFile(
                    self._messages(version, file, count), timeout=timeout, metadata=metadata
                )
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

        stored = await with_retries(
            self._settings.retry,
            attempt,
            on_retry=lambda error, delay: progress.retrying(file.path, error.message, delay),
        )
        return UploadReport(stored, Outcome.UPLOADED, file.size_bytes)

    async def _messages(
        self, version: ModelVersionName, file: LocalFile, count: Callable[[int], None]
    ) -> AsyncIterator[art.UploadFileRequest]:
        yield art.UploadFileRequest(
            spec=art.UploadSpec(
                model_version=str(version),
                path=file.path,
                size_bytes=file.size_bytes,
                sha256=file.sha256,
                content_type=file.content_type,
            )
        )
        stream: BinaryIO = await asyncio.to_thread(file.source.open, "rb")
        try:
            offset = 0
            while data := await asyncio.to_thread(stream.read, self._settings.chunk_bytes):
                yield art.UploadFileRequest(write_offset=offset, data=data)
                offset += len(data)
                count(len(data))
            yield art.UploadFileRequest(write_offset=offset, finish_write=True)
        finally:
            await asyncio.to_thread(stream.close)
