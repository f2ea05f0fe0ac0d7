"""Wiring of the artifact service process: object store, metadata client, gRPC server."""

from __future__ import annotations

import asyncio

from modelreg_common.server import ServiceBinding, serve
from modelregistry.v1 import artifact_service_pb2, artifact_service_pb2_grpc

from modelreg_artifacts.blobstore import S3BlobStore
from modelreg_artifacts.config import ArtifactSettings
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.servicer import ArtifactServicer
from modelreg_artifacts.transfers import Transfers

SERVICE_NAME = artifact_service_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name


async def run(settings: ArtifactSettings, stop: asyncio.Event | None = None) -> None:
    store = S3BlobStore(settings.s3, settings.io_threads)
    await store.ensure_bucket()
    metadata = MetadataClient(settings.metadata_addr)
    transfers = Transfers(
        store,
        metadata,
        part_bytes=settings.part_bytes,
        parts_in_flight=settings.parts_in_flight,
        download_chunk_bytes=settings.download_chunk_bytes,
    )
    servicer = ArtifactServicer(transfers)

    async def close_store() -> None:
        store.close()

    await serve(
        settings.listen_addr,
        [
            ServiceBinding(
                SERVICE_NAME,
                lambda server: artifact_service_pb2_grpc.add_ArtifactServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
        grace_seconds=settings.grace_seconds,
        on_shutdown=[metadata.close, close_store],
        stop=stop,
    )
