"""Wiring of the metadata service process: database, registry, servicer, gRPC server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from modelreg_common.access.bindings import RoleDirectory
from modelreg_common.security import open_security
from modelreg_common.server import ServiceBinding, serve
from modelreg_common.store_health import StoreHealth, StoreProbe
from modelregistry.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    manifest_service_pb2,
    manifest_service_pb2_grpc,
    metadata_service_pb2,
    metadata_service_pb2_grpc,
)

from modelreg_metadata.access_servicer import AccessServicer
from modelreg_metadata.audit.trail import AuditTrail
from modelreg_metadata.bootstrap import bootstrap_admin
from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.faults import Faults
from modelreg_metadata.manifest_servicer import ManifestServicer
from modelreg_metadata.registry import Registry
from modelreg_metadata.registry.access import ApiTokens, RoleBindings
from modelreg_metadata.retention import DeletedVersionRetention
from modelreg_metadata.servicer import MetadataServicer
from modelreg_metadata.store.access import MongoAccessStore
from modelreg_metadata.store.blob_references import MongoBlobReferences
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.models import MongoModelStore
from modelreg_metadata.store.namespaces import MongoNamespaceStore
from modelreg_metadata.store.requests import MongoRequestStore
from modelreg_metadata.store.versions import MongoVersionStore

log = structlog.get_logger("modelreg.metadata")

SERVICE_NAME = metadata_service_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name
ACCESS_SERVICE_NAME = access_service_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name
MANIFEST_SERVICE_NAME = manifest_service_pb2.DESCRIPTOR.services_by_name["ManifestService"].full_name


async def run(settings: MetadataSettings, stop: asyncio.Event | None = None) -> None:
    database = MongoDatabase(
        settings.mongodb_uri,
        settings.database,
        replica=settings.replica,
        faults=Faults.parse(settings.fault_injection),
        sweep_seconds=settings.event_sweep_seconds,
        timeouts=settings.mongodb_timeouts,
        atomic_updates=settings.atomic_updates,
    )
    await database.start()
    models = MongoModelStore(database)
    registry = Registry(
        MongoNamespaceStore(database),
        models,
        MongoVersionStore(database, models),
        MongoRequestStore(database),
    )
    servicer = MetadataServicer(registry, AuditTrail(database.event_log))
    mtls = settings.tls is not None and settings.tls.client_ca_file is not None
    security, token_directory, close_security = await open_security(settings.identity, database.db, mtls=mtls)
    access_store = MongoAccessStore(database)
    if settings.identity.bootstrap_token_file is not None:
        await bootstrap_admin(settings.identity.bootstrap_token_file, access_store)
    roles: RoleDirectory = security.roles
    access = AccessServicer(ApiTokens(access_store, token_directory), RoleBindings(access_store, roles))
    manifests = ManifestServicer(registry, MongoBlobReferences(database))
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
            ),
            ServiceBinding(
                ACCESS_SERVICE_NAME,
                lambda server: access_service_pb2_grpc.add_AccessServiceServicer_to_server(access, server),
            ),
            ServiceBinding(
                MANIFEST_SERVICE_NAME,
                lambda server: manifest_service_pb2_grpc.add_ManifestServiceServicer_to_server(
                    manifests, server
                ),
            ),
        ],
        grace_seconds=settings.grace_seconds,
        # Watchers end (UNAVAILABLE, with their last sequence) instead of holding up the drain.
        on_draining=draining,
        on_shutdown=[close_security, database.close],
        stop=stop,
        security=security,
        tls=settings.tls,
        metrics_addr=settings.metrics_addr,
        # NOT_SERVING while the database cannot be reached.
        store_health=StoreHealth(
            [StoreProbe("database", database.ping)], probe_timeout=settings.mongodb_timeouts.probe_seconds
        ),
    )
