"""Channels and stubs to both services, and the one way the SDK makes a unary call.

Every call gets a deadline, the credential and a request id as metadata, retries on UNAVAILABLE with
backoff, and failures translated to the typed exceptions of `modelreg.errors`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from modelreg_api import headers
from modelreg_api.channels import open_channel
from modelregistry.v1 import (
    access_service_pb2_grpc,
    artifact_service_pb2_grpc,
    metadata_service_pb2_grpc,
    model_pb2,
)
from modelregistry.v1 import artifact_service_pb2 as art

from modelreg.errors import from_rpc_error
from modelreg.retries import with_retries
from modelreg.settings import ClientSettings

if TYPE_CHECKING:  # the async stub classes exist only in the generated .pyi files
    from modelregistry.v1.access_service_pb2_grpc import AccessServiceAsyncStub
    from modelregistry.v1.artifact_service_pb2_grpc import ArtifactServiceAsyncStub
    from modelregistry.v1.metadata_service_pb2_grpc import MetadataServiceAsyncStub

Request = TypeVar("Request")
Response = TypeVar("Response")


class _ListResponse(Protocol):
    @property
    def next_page_token(self) -> str: ...


Page = TypeVar("Page", bound=_ListResponse)
Metadata = tuple[tuple[str, str], ...]

# Download chunks are 1 MiB by default on the server; leave room above the 4 MiB default.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # gRPC's reconnect backoff grows to 120 s by default; a restarted service should be found
    # again within the client's own retry budget.
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    # Not grpc.min_reconnect_backoff_ms: gRPC also takes it as the connect timeout (20 s by default).
]


_ARTIFACT_SERVICE = "/modelregistry.v1.ArtifactService/"


def _encoded(message: Message | bytes) -> bytes:
    """A request as sent: data messages come encoded already (`modelreg_api.wire`)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class DataCalls:
    """The artifact service's byte-carrying streams, with data messages in wire format.

    Requests may be protobuf messages or bytes from `wire.encode_data`; DownloadFile's responses
    arrive as bytes, for `wire.decode_data` (or the protobuf runtime for the first one).
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.write_upload: grpc.aio.StreamUnaryMultiCallable[
            art.WriteUploadRequest | bytes, art.UploadSession
        ] = channel.stream_unary(
            _ARTIFACT_SERVICE + "WriteUpload",
            request_serializer=_encoded,
            response_deserializer=art.UploadSession.FromString,
        )
        self.upload_file: grpc.aio.StreamUnaryMultiCallable[
            art.UploadFileRequest | bytes, model_pb2.ModelFile
        ] = channel.stream_unary(
            _ARTIFACT_SERVICE + "UploadFile",
            request_serializer=_encoded,
            response_deserializer=model_pb2.ModelFile.FromString,
        )
        self.download_file: grpc.aio.UnaryStreamMultiCallable[art.DownloadFileRequest, bytes] = (
            channel.unary_stream(
                _ARTIFACT_SERVICE + "DownloadFile",
                request_serializer=art.DownloadFileRequest.SerializeToString,
                response_deserializer=None,  # the bytes as received
            )
        )


class _Channels:
    """The two channels, opened on first use; shared by every Connection made `with_token`."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self.metadata: grpc.aio.Channel | None = None
        self.artifacts: grpc.aio.Channel | None = None

    def metadata_service(self) -> grpc.aio.Channel:
        if self.metadata is None:
            self.metadata = open_channel(
                self._settings.addresses.metadata, self._settings.tls, _CHANNEL_OPTIONS
            )
        return self.metadata

    def artifact_service(self) -> grpc.aio.Channel:
        if self.artifacts is None:
            self.artifacts = open_channel(
                self._settings.addresses.artifacts, self._settings.tls, _CHANNEL_OPTIONS
            )
        return self.artifacts

    async def close(self) -> None:
        for channel in (self.metadata, self.artifacts):
            if channel is not None:
                await channel.close(None)
        self.metadata = self.artifacts = None


class Connection:
    """Lazily opened channels: grpc.aio binds a channel to the event loop that first uses it."""

    def __init__(self, settings: ClientSettings, *, channels: _Channels | None = None) -> None:
        self.settings = settings
        # A connection made by `with_token` borrows its parent's channels and never closes them.
        self._owns_channels = channels is None
        self._channels = channels or _Channels(settings)
        self._metadata_stub: MetadataServiceAsyncStub | None = None
        self._access_stub: AccessServiceAsyncStub | None = None
        self._artifact_stub: ArtifactServiceAsyncStub | None = None
        self._data_calls: DataCalls | None = None

    def with_token(self, token: str, source: str) -> Connection:
        """A connection over the same channels whose calls present `token` instead.

        One process serving many principals (the web UI) keeps one pair of channels, not one
        per caller; the stubs are cheap, the channels (TCP, TLS, HTTP/2) are not.
        """
        settings = replace(self.settings, token=token, token_source=source)
        return Connection(settings, channels=self._channels)

    @property
    def metadata(self) -> MetadataServiceAsyncStub:
        if self._metadata_stub is None:
            self._metadata_stub = metadata_service_pb2_grpc.MetadataServiceStub(
                self._channels.metadata_service()
            )
        return self._metadata_stub

    @property
    def access(self) -> AccessServiceAsyncStub:
        """The AccessService (identity, API tokens, role bindings), served by the metadata service."""
        if self._access_stub is None:
            self._access_stub = access_service_pb2_grpc.AccessServiceStub(self._channels.metadata_service())
        return self._access_stub

    @property
    def artifacts(self) -> ArtifactServiceAsyncStub:
        if self._artifact_stub is None:
            self._artifact_stub = artifact_service_pb2_grpc.ArtifactServiceStub(
                self._channels.artifact_service()
            )
        return self._artifact_stub

    @property
    def data(self) -> DataCalls:
        if self._data_calls is None:
            self._data_calls = DataCalls(self._channels.artifact_service())
        return self._data_calls

    def call_metadata(self, request_id: str | None = None) -> Metadata:
        """Metadata for one logical call; retries reuse it so the server logs one request id."""
        pairs = [(headers.REQUEST_ID, request_id or uuid.uuid4().hex)]
        if self.settings.token:
            pairs.append((headers.AUTHORIZATION, f"Bearer {self.settings.token}"))
        return tuple(pairs)

    async def unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        *,
        deadline: float | None = None,
    ) -> Response:
        """Call `method` with the client's deadline (or `deadline` seconds), retrying on UNAVAILABLE."""
        metadata = self.call_metadata()
        timeout = self.settings.timeout if deadline is None else deadline

        async def attempt() -> Response:
            try:
                return await method(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

        return await with_retries(self.settings.retry, attempt)

    async def pages(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Page],
        request: Callable[[str], Request],
    ) -> AsyncIterator[Page]:
        """Every page of a List call, following `next_page_token` until it is empty."""
        token = ""
        while True:
            page = await self.unary(method, request(token))
            yield page
            token = page.next_page_token
            if not token:
                return

    async def close(self) -> None:
        if self._owns_channels:
            await self._channels.close()
        self._metadata_stub = self._artifact_stub = None
        self._access_stub = None
        self._data_calls = None
