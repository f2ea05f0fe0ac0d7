"""gRPC ArtifactService: translates stream messages to Transfers calls and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from modelreg import names
from modelreg_common.errors import InvalidArgument
from modelregistry.v1 import artifact_service_pb2 as pb
from modelregistry.v1 import artifact_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_artifacts.domain import (
    DownloadRequest,
    StoredFile,
    UploadSpec,
    check_download,
    check_upload_spec,
)
from modelreg_artifacts.transfers import Chunk, Transfers

Context = grpc.aio.ServicerContext[Any, Any]


def _file_to_proto(file: StoredFile) -> model_pb2.ModelFile:
    return model_pb2.ModelFile(
        path=file.path, size_bytes=file.size_bytes, sha256=file.sha256, content_type=file.content_type
    )


async def _chunks(
    first: pb.UploadFileRequest, rest: AsyncIterator[pb.UploadFileRequest]
) -> AsyncIterator[Chunk]:
    yield Chunk(first.write_offset, first.data, first.finish_write)
    async for message in rest:
        if message.HasField("spec"):
            raise InvalidArgument("spec", "only the first message of an upload may carry the spec")
        yield Chunk(message.write_offset, message.data, message.finish_write)


class ArtifactServicer(pb_grpc.ArtifactServiceServicer):
    def __init__(self, transfers: Transfers):
        self._transfers = transfers

    async def UploadFile(
        self, request_iterator: AsyncIterator[pb.UploadFileRequest], context: Context
    ) -> model_pb2.ModelFile:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("spec"):
            raise InvalidArgument("spec", "the first message of an upload must carry the spec")
        spec = check_upload_spec(
            UploadSpec(
                model_version=names.parse_model_version_name(first.spec.model_version, "spec.model_version"),
                path=first.spec.path,
                size_bytes=first.spec.size_bytes,
                sha256=first.spec.sha256,
                content_type=first.spec.content_type or "application/octet-stream",
            )
        )
        stored = await self._transfers.upload(spec, _chunks(first, aiter(request_iterator)))
        return _file_to_proto(stored)

    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: Context
    ) -> AsyncIterator[pb.DownloadFileResponse]:
        wanted = check_download(
            DownloadRequest(
                version=names.parse_version_reference(request.model_version, "model_version"),
                path=request.path,
                offset=request.offset,
                limit=request.limit,
            )
        )
        file, pieces = await self._transfers.open_download(wanted)
        yield pb.DownloadFileResponse(file=_file_to_proto(file), offset=request.offset)
        async for offset, data in pieces:
            yield pb.DownloadFileResponse(offset=offset, data=data)
