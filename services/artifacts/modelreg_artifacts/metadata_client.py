"""The artifact service's view of the metadata service, through its generated gRPC client.

The caller's actor and request id travel along, so the metadata service records who added a
file, and one request id follows the call through both services' logs.
"""

from __future__ import annotations

import grpc
from modelreg import headers
from modelreg.names import AliasName, ModelVersionName
from modelreg_common.context import current_actor, current_request_id
from modelreg_common.status import error_from_rpc
from modelregistry.v1 import metadata_service_pb2 as pb
from modelregistry.v1 import metadata_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_artifacts.domain import StoredFile

CALL_TIMEOUT_SECONDS = 30.0


class MetadataClient:
    def __init__(self, address: str):
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = pb_grpc.MetadataServiceStub(self._channel)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return ((headers.ACTOR, current_actor()), (headers.REQUEST_ID, current_request_id()))

    async def get_version(self, ref: ModelVersionName | AliasName) -> model_pb2.ModelVersion:
        try:
            if isinstance(ref, AliasName):
                return await self._stub.GetModelVersionByAlias(
                    pb.GetModelVersionByAliasRequest(name=str(ref)),
                    metadata=self._metadata(),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            return await self._stub.GetModelVersion(
                pb.GetModelVersionRequest(name=str(ref)),
                metadata=self._metadata(),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None

    async def add_file(self, version: ModelVersionName, file: StoredFile) -> model_pb2.ModelVersion:
        request = pb.AddModelVersionFileRequest(
            model_version=str(version),
            file=model_pb2.ModelFile(
                path=file.path, size_bytes=file.size_bytes, sha256=file.sha256, content_type=file.content_type
            ),
        )
        try:
            return await self._stub.AddModelVersionFile(
                request, metadata=self._metadata(), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None

    async def referenced(self, digests: list[str]) -> list[str]:
        """The digests that some version's manifest references (soft-deleted versions included)."""
        if not digests:
            return []
        try:
            reply = await self._stub.CheckBlobReferences(
                pb.CheckBlobReferencesRequest(sha256s=digests),
                metadata=self._metadata(),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        return list(reply.referenced_sha256s)

    async def close(self) -> None:
        await self._channel.close(grace=None)
