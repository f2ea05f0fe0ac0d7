"""gRPC ManifestService: the artifact service's internal calls (manifest entries, blob references).

Only internal principals reach these methods (access/permissions.py: Scope.INTERNAL): a manifest
entry can then exist only for a blob the artifact service stored and verified, with its real size.
"""

from __future__ import annotations

from typing import Any

import grpc
from modelreg_api import names
from modelregistry.v1 import manifest_service_pb2 as pb
from modelregistry.v1 import manifest_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_metadata import convert
from modelreg_metadata.registry import Registry
from modelreg_metadata.store import BlobReferences

Context = grpc.aio.ServicerContext[Any, Any]


class ManifestServicer(pb_grpc.ManifestServiceServicer):
    def __init__(self, registry: Registry, blob_references: BlobReferences):
        self._registry = registry
        self._blob_references = blob_references

    async def AddModelVersionFile(
        self, request: pb.AddModelVersionFileRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version, "model_version")
        names.check_file_path(request.file.path, "file.path")
        version = await self._registry.versions.add_files(
            name, [convert.file_from_proto(request.file)], replace_existing=request.replace_existing
        )
        return convert.version_to_proto(version)

    async def BatchAddModelVersionFiles(
        self, request: pb.BatchAddModelVersionFilesRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version, "model_version")
        for index, file in enumerate(request.files):
            names.check_file_path(file.path, f"files[{index}].path")
        files = [convert.file_from_proto(file) for file in request.files]
        version = await self._registry.versions.add_files(
            name, files, replace_existing=request.replace_existing
        )
        return convert.version_to_proto(version)

    async def CheckBlobReferences(
        self, request: pb.CheckBlobReferencesRequest, context: Context
    ) -> pb.CheckBlobReferencesResponse:
        referenced = await self._blob_references.referenced(list(request.sha256s))
        return pb.CheckBlobReferencesResponse(referenced_sha256s=referenced)
