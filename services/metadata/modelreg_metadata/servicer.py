"""gRPC MetadataService: parses names, translates messages, delegates to the Registry."""

from __future__ import annotations

from typing import Any

import grpc
from modelreg import names
from modelregistry.v1 import metadata_service_pb2 as pb
from modelregistry.v1 import metadata_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_metadata import convert
from modelreg_metadata.registry import Registry
from modelreg_metadata.store.blob_references import MongoBlobReferences

Context = grpc.aio.ServicerContext[Any, Any]


class MetadataServicer(pb_grpc.MetadataServiceServicer):
    def __init__(self, registry: Registry, blob_references: MongoBlobReferences):
        self._registry = registry
        self._blob_references = blob_references

    async def CreateModel(self, request: pb.CreateModelRequest, context: Context) -> model_pb2.Model:
        parent = names.parse_namespace_name(request.parent, "parent")
        names.check_model_id(request.model_id, "model_id")
        draft = convert.model_draft(names.ModelName(parent.namespace, request.model_id), request.model)
        model = await self._registry.create_model(parent, request.model_id, draft)
        return convert.model_to_proto(model)

    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> model_pb2.Model:
        model = await self._registry.get_model(names.parse_model_name(request.name, "name"))
        return convert.model_to_proto(model)

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        parent = names.parse_namespace_name(request.parent, "parent")
        models, token = await self._registry.list_models(parent, request.page_size, request.page_token)
        return pb.ListModelsResponse(
            models=[convert.model_to_proto(m) for m in models], next_page_token=token
        )

    async def CreateModelVersion(
        self, request: pb.CreateModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        parent = names.parse_model_name(request.parent, "parent")
        draft = convert.version_draft(parent.version(1), request.model_version)
        version = await self._registry.create_version(parent, draft)
        return convert.version_to_proto(version)

    async def GetModelVersion(
        self, request: pb.GetModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        version = await self._registry.get_version(names.parse_model_version_name(request.name, "name"))
        return convert.version_to_proto(version)

    async def ListModelVersions(
        self, request: pb.ListModelVersionsRequest, context: Context
    ) -> pb.ListModelVersionsResponse:
        parent = names.parse_model_name(request.parent, "parent")
        versions, token = await self._registry.list_versions(parent, request.page_size, request.page_token)
        return pb.ListModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in versions], next_page_token=token
        )

    async def SetAlias(self, request: pb.SetAliasRequest, context: Context) -> model_pb2.Alias:
        alias = names.parse_alias_name(request.name, "name")
        target = names.parse_model_version_name(request.model_version, "model_version")
        return convert.alias_to_proto(await self._registry.set_alias(alias, target, request.etag))

    async def GetModelVersionByAlias(
        self, request: pb.GetModelVersionByAliasRequest, context: Context
    ) -> model_pb2.ModelVersion:
        version = await self._registry.get_version_by_alias(names.parse_alias_name(request.name, "name"))
        return convert.version_to_proto(version)

    async def SealModelVersion(
        self, request: pb.SealModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        return convert.version_to_proto(await self._registry.seal_version(name, request.etag))

    async def AddModelVersionFile(
        self, request: pb.AddModelVersionFileRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version, "model_version")
        version = await self._registry.add_files(name, [convert.file_from_proto(request.file)])
        return convert.version_to_proto(version)

    async def CheckBlobReferences(
        self, request: pb.CheckBlobReferencesRequest, context: Context
    ) -> pb.CheckBlobReferencesResponse:
        referenced = await self._blob_references.referenced(list(request.sha256s))
        return pb.CheckBlobReferencesResponse(referenced_sha256s=referenced)

    async def BatchAddModelVersionFiles(
        self, request: pb.BatchAddModelVersionFilesRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version, "model_version")
        files = [convert.file_from_proto(file) for file in request.files]
        return convert.version_to_proto(await self._registry.add_files(name, files))
