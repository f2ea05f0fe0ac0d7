"""Helpers shared by the integration tests: credentials, unique names, uploads, downloads, error
details.

Credentials: the session's stack is started with authentication on, like production. Its
bootstrap admin creates, through the AccessService, one API token per principal a test acts as
(`credential_for`), with the role asked for. `as_actor("bob@example.com")` is the call metadata
of `user:bob@example.com`, a global admin unless a test asks for less; `ACTOR` is alice's, and
the session's channels send alice's credential when a call names none.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import grpc
from google.rpc import error_details_pb2, status_pb2
from modelreg_local.credentials import issue_token
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

__all__ = ["AccessStub", "ArtifactStub", "ManifestStub", "MetadataStub"]

if TYPE_CHECKING:  # the async stub types exist only in the generated .pyi stubs
    from modelregistry.v1.access_service_pb2_grpc import AccessServiceAsyncStub as AccessStub
    from modelregistry.v1.artifact_service_pb2_grpc import ArtifactServiceAsyncStub as ArtifactStub
    from modelregistry.v1.manifest_service_pb2_grpc import ManifestServiceAsyncStub as ManifestStub
    from modelregistry.v1.metadata_service_pb2_grpc import MetadataServiceAsyncStub as MetadataStub

CHUNK = 1024 * 1024
ALICE = "user:alice@example.com"
Metadata = tuple[tuple[str, str], ...]


class _Issuer:
    """Makes API tokens for test principals with the stack's bootstrap admin credential."""

    def __init__(self) -> None:
        self.address = ""
        self.admin_token = ""
        self._issued: dict[tuple[str, str, str], str] = {}
        self._principals: dict[str, str] = {}  # credential -> principal

    def use(self, address: str, admin_token: str) -> None:
        self.address, self.admin_token = address, admin_token
        self._issued.clear()

    def credential(self, principal: str, role: str, namespace: str) -> str:
        key = (principal, role, namespace)
        if key not in self._issued:
            assert self.address, "no test stack: use the `stack` fixture (tests/conftest.py)"
            grants = [(namespace, role)] if role else []
            secret = issue_token(self.address, self.admin_token, principal, grants, description="test")
            self._issued[key] = secret
            self._principals[secret] = principal
        return self._issued[key]

    def principal_of(self, credential: str) -> str | None:
        """Whose credential this is, if this issuer made it."""
        return self._principals.get(credential)


ISSUER = _Issuer()


def principal_of(name: str) -> str:
    """`alice@example.com` -> `user:alice@example.com`; typed principals stay as they are."""
    return name if ":" in name else f"user:{name}"


def credential_for(principal: str, role: str = "admin", namespace: str = "-") -> str:
    """An API token of `principal` (a user or service account), granted `role` in `namespace`
    (`-`: every namespace; role "" grants nothing)."""
    return ISSUER.credential(principal_of(principal), role, namespace)


def bearer(credential: str) -> Metadata:
    return (("authorization", f"Bearer {credential}"),)


class _Lazy(Sequence[tuple[str, str]]):
    """Call metadata computed when a call uses it (module constants exist before the stack)."""

    def __init__(self, make: Callable[[], Metadata]) -> None:
        self._make = make

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | Sequence[tuple[str, str]]:
        return self._make()[index]

    def __len__(self) -> int:
        return len(self._make())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._make())


def as_actor(
    name: str, request_id: str = "", *, role: str = "admin", namespace: str = "-"
) -> Sequence[tuple[str, str]]:
    """Call metadata acting as `name` (a global admin unless `role`/`namespace` say otherwise),
    with `x-request-id` when given. The token is made when a call first uses it, so modules may
    hold these as constants."""

    def make() -> Metadata:
        actor = bearer(credential_for(name, role, namespace))
        return (*actor, ("x-request-id", request_id)) if request_id else actor

    return _Lazy(make)


# Alice's credential: the default actor of the integration tests (a global admin).
ACTOR = as_actor(ALICE)


class _Credentialed:
    """Chooses the credential of every call from the one it presents (None: it presents none)."""

    def __init__(self, choose: Callable[[str | None], str]) -> None:
        self._choose = choose

    def _with_credential(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        presented = next((v.removeprefix("Bearer ") for k, v in metadata if k == "authorization"), None)
        chosen = self._choose(presented)
        if chosen != presented:
            metadata = [(k, v) for k, v in metadata if k != "authorization"]
            metadata.append(("authorization", f"Bearer {chosen}"))
        return details._replace(metadata=grpc.aio.Metadata(*metadata))


class _UnaryUnary(_Credentialed, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_credential(details), request)


class _UnaryStream(_Credentialed, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_credential(details), request)


class _StreamUnary(_Credentialed, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_credential(details), requests)


class _StreamStream(_Credentialed, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_credential(details), requests)


def credential_chooser(choose: Callable[[str | None], str]) -> list[Any]:
    """Channel interceptors that send the credential `choose` picks from the one a call presents
    (grpc.aio files each interceptor under one kind of call only, so there is one per kind)."""
    return [kind(choose) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def default_credential(credential: Callable[[], str]) -> list[Any]:
    """Channel interceptors that send `credential` with every call that presents none."""
    return credential_chooser(lambda presented: presented or credential())


def authenticated_channel(address: str, **options: Any) -> grpc.aio.Channel:
    """A channel whose calls act as alice (a global admin) unless they name a credential."""
    return grpc.aio.insecure_channel(
        address, interceptors=default_credential(lambda: credential_for(ALICE)), **options
    )


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
    metadata: Sequence[tuple[str, str]] = ACTOR,
    replace: bool = False,
) -> model_pb2.ModelFile:
    """`replace`: replace other content the version holds at `path` (else FILE_EXISTS)."""
    spec = art.UploadSpec(
        model_version=version,
        path=path,
        size_bytes=len(data) if size is None else size,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        replace_existing=replace,
    )
    return await stub.UploadFile(upload_messages(spec, data), metadata=metadata)


async def download(
    stub: ArtifactStub,
    ref: str,
    path: str,
    offset: int = 0,
    limit: int = 0,
    *,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> tuple[model_pb2.ModelFile, bytes]:
    header: model_pb2.ModelFile | None = None
    received = bytearray()
    request = art.DownloadFileRequest(model_version=ref, path=path, offset=offset, limit=limit)
    async for message in stub.DownloadFile(request, metadata=metadata):
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
