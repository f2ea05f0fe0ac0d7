"""Channels and stubs to both services, and the one way the SDK makes a unary call.

Every call gets a deadline, the credential and a request id as metadata, retries on UNAVAILABLE with
backoff, and failures translated to the typed exceptions of `modelreg.errors`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
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


class Connection:
    """Lazily opened channels: grpc.aio binds a channel to the event loop that first uses it."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._metadata_channel: grpc.aio.Channel | None = None
        self._artifact_channel: grpc.aio.Channel | None = None
        self._metadata_stub: MetadataServiceAsyncStub | None = None
        self._access_stub: AccessServiceAsyncStub | None = None
        self._artifact_stub: ArtifactServiceAsyncStub | None = None
        self._data_calls: DataCalls | None = None

    def _metadata_service(self) -> grpc.aio.Channel:
        if self._metadata_channel is None:
            self._metadata_channel = open_channel(
                self.settings.addresses.metadata, self.settings.tls, _CHANNEL_OPTIONS
            )
        return self._metadata_channel

    @property
    def metadata(self) -> MetadataServiceAsyncStub:
        if self._metadata_stub is None:
            self._metadata_stub = metadata_service_pb2_grpc.MetadataServiceStub(self._metadata_service())
        return self._metadata_stub

    @property
    def access(self) -> AccessServiceAsyncStub:
        """The AccessService (identity, API tokens, role bindings), served by the metadata service."""
        if self._access_stub is None:
            self._access_stub = access_service_pb2_grpc.AccessServiceStub(self._metadata_service())
        return self._access_stub

    def _artifact_service(self) -> grpc.aio.Channel:
        if self._artifact_channel is None:
            self._artifact_channel = open_channel(
                self.settings.addresses.artifacts, self.settings.tls, _CHANNEL_OPTIONS
            )
        return self._artifact_channel

    @property
    def artifacts(self) -> ArtifactServiceAsyncStub:
        if self._artifact_stub is None:
            self._artifact_stub = artifact_service_pb2_grpc.ArtifactServiceStub(self._artifact_service())
        return self._artifact_stub

    @property
    def data(self) -> DataCalls:
        if self._data_calls is None:
            self._data_calls = DataCalls(self._artifact_service())
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
        for channel in (self._metadata_channel, self._artifact_channel):
            if channel is not None:
                await channel.close(None)
        self._metadata_channel = self._artifact_channel = None
        self._metadata_stub = self._artifact_stub = None
        self._access_stub = None
