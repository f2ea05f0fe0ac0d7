"""gRPC ArtifactService: translates messages to the upload and download use cases and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from modelreg_api import names, wire
from modelreg_api.errors import InvalidArgument
from modelreg_api.names import UploadSessionName
from modelreg_common.access.decisions import current_access
from modelregistry.v1 import artifact_service_pb2 as pb
from modelregistry.v1 import artifact_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_artifacts.domain import (
    DownloadRequest,
    StoredFile,
    UploadSession,
    UploadSpec,
    UploadState,
    check_digests,
    check_download,
    check_upload_spec,
)
from modelreg_artifacts.downloads import BlobProblem, Downloads
from modelreg_artifacts.garbage import GarbageCollector
from modelreg_artifacts.uploads import Chunk, Uploads

Context = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    UploadState.ACTIVE: pb.UPLOAD_STATE_ACTIVE,
    UploadState.FINISHED: pb.UPLOAD_STATE_FINISHED,
    UploadState.FAILED: pb.UPLOAD_STATE_FAILED,
    UploadState.CANCELLED: pb.UPLOAD_STATE_CANCELLED,
    UploadState.EXPIRED: pb.UPLOAD_STATE_EXPIRED,
}
_PROBLEMS = {
    BlobProblem.MISSING: pb.BLOB_PROBLEM_MISSING,
    BlobProblem.SIZE_MISMATCH: pb.BLOB_PROBLEM_SIZE_MISMATCH,
    BlobProblem.DIGEST_MISMATCH: pb.BLOB_PROBLEM_DIGEST_MISMATCH,
}


def _file_to_proto(file: StoredFile) -> model_pb2.ModelFile:
    return model_pb2.ModelFile(
        path=file.path, size_bytes=file.size_bytes, sha256=file.sha256, content_type=file.content_type
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _spec_from_proto(spec: pb.UploadSpec) -> UploadSpec:
    return check_upload_spec(
        UploadSpec(
            model_version=names.parse_model_version_name(spec.model_version, "spec.model_version"),
            path=spec.path,
            size_bytes=spec.size_bytes,
            sha256=spec.sha256,
            content_type=spec.content_type or "application/octet-stream",
            replace_existing=spec.replace_existing,
        )
    )


def _session_name(upload_id: str) -> str:
    return str(UploadSessionName(upload_id)) if upload_id else ""


def _session_to_proto(session: UploadSession) -> pb.UploadSession:
    spec = session.spec
    return pb.UploadSession(
        name=str(session.name),
        spec=pb.UploadSpec(
            model_version=str(spec.model_version),
            path=spec.path,
            size_bytes=spec.size_bytes,
            sha256=spec.sha256,
            content_type=spec.content_type,
            replace_existing=spec.replace_existing,
        ),
        state=_STATES[session.state],
        committed_size=spec.size_bytes if session.state is UploadState.FINISHED else session.committed_size,
        part_size_bytes=session.part_bytes,
        file=_file_to_proto(session.file) if session.state is UploadState.FINISHED else None,
        blob_reused=session.blob_reused,
        failure_reason=session.failure_reason,
        failure_message=session.failure_message,
        create_time=_timestamp(session.create_time),
        update_time=_timestamp(session.update_time),
        expire_time=_timestamp(session.expire_time),
        concurrent_upload=_session_name(session.concurrent_upload),
    )


def _chunk(message: pb.UploadFileRequest | pb.WriteUploadRequest) -> Chunk:
    return Chunk(
        message.write_offset,
        message.data,
        message.finish_write,
        message.crc32c if message.HasField("crc32c") else None,
    )


async def _upload_chunks(
    first: pb.UploadFileRequest, rest: AsyncIterator[pb.UploadFileRequest]
) -> AsyncIterator[Chunk]:
    yield _chunk(first)
    async for message in rest:
        if message.HasField("spec"):
            raise InvalidArgument("spec", "only the first message of an upload may carry the spec")
        yield _chunk(message)


async def _write_chunks(
    first: pb.WriteUploadRequest, rest: AsyncIterator[pb.WriteUploadRequest]
) -> AsyncIterator[Chunk]:
    yield _chunk(first)
    async for message in rest:
        if message.upload_session and message.upload_session != first.upload_session:
            raise InvalidArgument("upload_session", "every message of a stream must name the same session")
        yield _chunk(message)


class ArtifactServicer(pb_grpc.ArtifactServiceServicer):
    def __init__(self, uploads: Uploads, downloads: Downloads, collector: GarbageCollector):
        self._uploads = uploads
        self._downloads = downloads
        self._collector = collector

    async def _authorized_session(self, name: names.UploadSessionName) -> UploadSession:
        """The session, if the caller may upload to its version (else as if it did not exist)."""
        session = await self._uploads.get(name)
        await current_access().require(
            session.spec.model_version, not_found=f"upload session {name} not found"
        )
        return session

    async def UploadFile(
        self, request_iterator: AsyncIterator[pb.UploadFileRequest], context: Context
    ) -> model_pb2.ModelFile:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("spec"):
            raise InvalidArgument("spec", "the first message of an upload must carry the spec")
        spec = _spec_from_proto(first.spec)
        await current_access().require(spec.model_version)
        stored = await self._uploads.upload(spec, _upload_chunks(first, aiter(request_iterator)))
        return _file_to_proto(stored)

    # Data messages are yielded pre-encoded (bytes), which the base class's type does not allow.
    async def DownloadFile(  # type: ignore[override]
        self, request: pb.DownloadFileRequest, context: Context
    ) -> AsyncIterator[pb.DownloadFileResponse | bytes]:
        wanted = check_download(
            DownloadRequest(
                version=names.parse_version_reference(request.model_version, "model_version"),
                path=request.path,
                offset=request.offset,
                limit=request.limit,
            )
        )
        await current_access().require(wanted.version)
        file, pieces = await self._downloads.open(wanted)
        yield pb.DownloadFileResponse(file=_file_to_proto(file), offset=request.offset)
        async for offset, data in pieces:
            # Encoded directly (the server plumbing sends bytes as they are): one copy of `data`.
            yield wire.encode_data(offset, data)

    async def StartUpload(self, request: pb.StartUploadRequest, context: Context) -> pb.UploadSession:
        spec = _spec_from_proto(request.spec)
        await current_access().require(spec.model_version)
        session = await self._uploads.start(spec)
        return _session_to_proto(session)

    async def WriteUpload(
        self, request_iterator: AsyncIterator[pb.WriteUploadRequest], context: Context
    ) -> pb.UploadSession:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.upload_session:
            raise InvalidArgument("upload_session", "the first message of a write must name the session")
        name = names.parse_upload_session_name(first.upload_session, "upload_session")
        await self._authorized_session(name)
        session = await self._uploads.write(name, _write_chunks(first, aiter(request_iterator)))
        return _session_to_proto(session)

    async def GetUploadSession(
        self, request: pb.GetUploadSessionRequest, context: Context
    ) -> pb.UploadSession:
        session = await self._authorized_session(names.parse_upload_session_name(request.name, "name"))
        return _session_to_proto(session)

    async def CancelUploadSession(
        self, request: pb.CancelUploadSessionRequest, context: Context
    ) -> pb.UploadSession:
        name = names.parse_upload_session_name(request.name, "name")
        await self._authorized_session(name)
        session = await self._uploads.cancel(name)
        return _session_to_proto(session)

    async def FindMissingBlobs(
        self, request: pb.FindMissingBlobsRequest, context: Context
    ) -> pb.FindMissingBlobsResponse:
        if not request.model_version:
            raise InvalidArgument("model_version", "is required: the version the blobs are for")
        version = names.parse_model_version_name(request.model_version, "model_version")
        await current_access().require(version)
        missing, uploading = await self._uploads.find_missing(check_digests(list(request.sha256s)))
        return pb.FindMissingBlobsResponse(missing_sha256s=missing, uploading_sha256s=uploading)

    async def VerifyModelVersion(
        self, request: pb.VerifyModelVersionRequest, context: Context
    ) -> pb.VerifyModelVersionResponse:
        ref = names.parse_version_reference(request.model_version, "model_version")
        await current_access().require(ref)
        check = await self._downloads.verify(ref)
        return pb.VerifyModelVersionResponse(
            model_version=check.model_version,
            checked_files=check.checked_files,
            checked_bytes=check.checked_bytes,
            problems=[
                pb.FileCheck(
                    path=p.file.path, sha256=p.file.sha256, problem=_PROBLEMS[p.problem], detail=p.detail
                )
                for p in check.problems
            ],
        )

    async def CollectGarbage(
        self, request: pb.CollectGarbageRequest, context: Context
    ) -> pb.CollectGarbageResponse:
        report = await self._collector.collect(dry_run=request.dry_run)
        return pb.CollectGarbageResponse(
            dry_run=report.dry_run,
            deleted_blobs=report.deleted_blobs,
            deleted_bytes=report.deleted_bytes,
            deleted_sha256s=report.deleted_sha256s,
            kept_blobs=report.kept_blobs,
        )
