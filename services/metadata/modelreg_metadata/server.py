"""Wiring of the metadata service process: database, registry, servicer, gRPC server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from modelreg_common.server import ServiceBinding, serve
from modelregistry.v1 import metadata_service_pb2, metadata_service_pb2_grpc

from modelreg_metadata.audit_trail import AuditTrail
from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.faults import Faults
from modelreg_metadata.registry import Registry
from modelreg_metadata.retention import DeletedVersionRetention
from modelreg_metadata.servicer import MetadataServicer
from modelreg_metadata.store.blob_references import MongoBlobReferences
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.models import MongoModelStore
from modelreg_metadata.store.namespaces import MongoNamespaceStore
from modelreg_metadata.store.versions import MongoVersionStore

log = structlog.get_logger("modelreg.metadata")

SERVICE_NAME = metadata_service_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name


async def run(settings: MetadataSettings, stop: asyncio.Event | None = None) -> None:
    database = MongoDatabase(
        settings.mongodb_uri,
        settings.database,
        replica=settings.replica,
        faults=Faults.parse(settings.fault_injection),
        sweep_seconds=settings.event_sweep_seconds,
    )
    await database.start()
    models = MongoModelStore(database)
    registry = Registry(MongoNamespaceStore(database), models, MongoVersionStore(database, models))
    servicer = MetadataServicer(registry, AuditTrail(database.event_log), MongoBlobReferences(database))
    draining = [database.stop_feeds]
    if settings.purge_deleted_after_days > 0:
        retention = DeletedVersionRetention(registry, timedelta(days=settings.purge_deleted_after_days))
        retention.start()
        draining.insert(0, retention.stop)
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
        # Watchers end (UNAVAILABLE, with their last sequence) instead of holding up the drain.
        on_draining=draining,
        on_shutdown=[database.close],
        stop=stop,
        tls=settings.tls,
    )
