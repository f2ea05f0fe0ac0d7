"""Wiring of the metadata service process: database, registry, servicer, gRPC server."""

from __future__ import annotations

import asyncio

import structlog
from modelreg_common.server import ServiceBinding, serve
from modelregistry.v1 import metadata_service_pb2, metadata_service_pb2_grpc

from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.registry import Registry
from modelreg_metadata.servicer import MetadataServicer
from modelreg_metadata.store.blob_references import MongoBlobReferences
from modelreg_metadata.store.mongo import MongoAliasStore, MongoDatabase, MongoModelStore, MongoVersionStore

log = structlog.get_logger("modelreg.metadata")

SERVICE_NAME = metadata_service_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name


async def run(settings: MetadataSettings, stop: asyncio.Event | None = None) -> None:
    database = MongoDatabase(settings.mongodb_uri, settings.database)
    await database.ensure_indexes()
    registry = Registry(MongoModelStore(database), MongoVersionStore(database), MongoAliasStore(database))
    blob_references = MongoBlobReferences(database)
    await blob_references.ensure_indexes()
    servicer = MetadataServicer(registry, blob_references)
    await serve(
        settings.listen_addr,
        [
            ServiceBinding(
                SERVICE_NAME,
                lambda server: metadata_service_pb2_grpc.add_MetadataServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
        grace_seconds=settings.grace_seconds,
        on_shutdown=[database.close],
        stop=stop,
    )
