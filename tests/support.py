"""Helpers shared by the integration tests: unique names, uploads, downloads, error details."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

__all__ = ["ArtifactStub", "MetadataStub"]

if TYPE_CHECKING:  # the async stub types exist only in the generated .pyi stubs
    from modelregistry.v1.artifact_service_pb2_grpc import ArtifactServiceAsyncStub as ArtifactStub
    from modelregistry.v1.metadata_service_pb2_grpc import MetadataServiceAsyncStub as MetadataStub

CHUNK = 1024 * 1024
ACTOR = (("x-modelreg-actor", "alice@example.com"),)


def as_actor(name: str, request_id: str = "") -> tuple[tuple[str, str], ...]:
    """Call metadata acting as `name` (and with `x-request-id` when given)."""
    actor = (("x-modelreg-actor", name),)
    return (*actor, ("x-request-id", request_id)) if request_id else actor


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def new_model(stub: MetadataStub, namespace: str = "team-a") -> model_pb2.Model:
    return await stub.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id=unique()), metadata=ACTOR
    )


async def new_version(stub: MetadataStub, **fields: object) -> model_pb2.ModelVersion:
    model = await new_model(stub)
    return await stub.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name, model_version=model_pb2.ModelVersion(**fields)),  # type: ignore[arg-type]
        metadata=ACTOR,
    )


async def upload_messages(
    spec: art.UploadSpec, data: bytes, chunk: int = CHUNK, finish: bool = True
) -> AsyncIterator[art.UploadFileRequest]:
    yield art.UploadFileRequest(spec=spec)
    for offset in range(0, len(data), chunk):
        yield art.UploadFileRequest(write_offset=offset, data=data[offset : offset + chunk])
    if finish:
        yield art.UploadFileRequest(write_offset=len(data), finish_write=True)


async def upload(
    stub: ArtifactStub,
    version: str,
    path: str,
    data: bytes,
    *,
    sha256: str | None = None,
    size: int | None = None,
) -> model_pb2.ModelFile:
    spec = art.UploadSpec(
        model_version=version,
        path=path,
        size_bytes=len(data) if size is None else size,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
    )
    return await stub.UploadFile(upload_messages(spec, data), metadata=ACTOR)


async def download(
    stub: ArtifactStub, ref: str, path: str, offset: int = 0, limit: int = 0
) -> tuple[model_pb2.ModelFile, bytes]:
    header: model_pb2.ModelFile | None = None
    received = bytearray()
    request = art.DownloadFileRequest(model_version=ref, path=path, offset=offset, limit=limit)
    async for message in stub.DownloadFile(request):
        if message.HasField("file"):
            header = message.file
        if message.data:
            assert message.offset == offset + len(received)
            received += message.data
    assert header is not None, "the first message must carry the file"
    return header, bytes(received)


def error_info(exc: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """The AIP-193 reason and the names of the fields in violation."""
    reason, fields = "", []
    trailers: Any = exc.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            for detail in status_pb2.Status.FromString(value).details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                elif detail.Unpack(bad):
                    fields = [v.field for v in bad.field_violations]
    return reason, fields


def spec_for(version: str, path: str, data: bytes, *, sha256: str | None = None) -> art.UploadSpec:
    return art.UploadSpec(
        model_version=version,
        path=path,
        size_bytes=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
    )


async def start_upload(
    stub: ArtifactStub, version: str, path: str, data: bytes, *, sha256: str | None = None
) -> art.UploadSession:
    return await stub.StartUpload(
        art.StartUploadRequest(spec=spec_for(version, path, data, sha256=sha256)), metadata=ACTOR
    )


async def write_upload(
    stub: ArtifactStub,
    session: str,
    data: bytes,
    start: int = 0,
    *,
    end: int | None = None,
    finish: bool = True,
    chunk: int = CHUNK,
) -> art.UploadSession:
    """Send data[start:end] to a session in one stream (finishing it when `finish`)."""
    end = len(data) if end is None else end

    async def messages() -> AsyncIterator[art.WriteUploadRequest]:
        yield art.WriteUploadRequest(upload_session=session, write_offset=start)
        for offset in range(start, end, chunk):
            yield art.WriteUploadRequest(write_offset=offset, data=data[offset : min(offset + chunk, end)])
        if finish:
            yield art.WriteUploadRequest(write_offset=end, finish_write=True)

    return await stub.WriteUpload(messages(), metadata=ACTOR)


async def session_of(stub: ArtifactStub, name: str) -> art.UploadSession:
    return await stub.GetUploadSession(art.GetUploadSessionRequest(name=name))


def error_metadata(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    """The AIP-193 ErrorInfo metadata (the values a refused governance check compared)."""
    trailers: Any = exc.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return dict(info.metadata)
    return {}


async def list_all_events(stub: MetadataStub, **filters: Any) -> list[event_pb2.Event]:
    """Every event matching `filters` (ListEventsRequest fields), following the page tokens."""
    events: list[event_pb2.Event] = []
    token = ""
    while True:
        page = await stub.ListEvents(md.ListEventsRequest(page_token=token, page_size=200, **filters))
        events += page.events
        token = page.next_page_token
        if not token:
            return events


async def events_when(
    stub: MetadataStub, count: int, within: float = 15.0, **filters: Any
) -> list[event_pb2.Event]:
    """The events matching `filters` once there are at least `count` of them.

    Events reach the trail a moment after the change's response (the relay moves them from the
    changed document's outbox), so readers poll.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        events = await list_all_events(stub, **filters)
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.05)
