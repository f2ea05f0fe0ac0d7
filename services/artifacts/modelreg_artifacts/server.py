"""Wiring of the artifact service process: stores, metadata client, use cases, sweeper, gRPC server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from modelreg_common.security import open_security
from modelreg_common.server import ServiceBinding, serve
from modelreg_common.store_health import StoreHealth, StoreProbe
from modelregistry.v1 import artifact_service_pb2, artifact_service_pb2_grpc

from modelreg_artifacts.config import ArtifactSettings
from modelreg_artifacts.downloads import Downloads
from modelreg_artifacts.garbage import GarbageCollector
from modelreg_artifacts.hashing import LiveHashes
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.objects.s3 import BucketProbe, S3ObjectStore
from modelreg_artifacts.servicer import ArtifactServicer
from modelreg_artifacts.store.blob_index import MongoBlobIndex
from modelreg_artifacts.store.database import ArtifactDatabase
from modelreg_artifacts.store.upload_sessions import MongoUploadSessionStore
from modelreg_artifacts.sweeper import Sweeper
from modelreg_artifacts.uploads import Uploads

SERVICE_NAME = artifact_service_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name


async def run(settings: ArtifactSettings, stop: asyncio.Event | None = None) -> None:
    objects = S3ObjectStore(settings.s3, settings.io_threads)
    await objects.ensure_bucket()
    database = ArtifactDatabase(settings.mongodb_uri, settings.database, settings.mongodb_timeouts)
    sessions = MongoUploadSessionStore(database, timedelta(seconds=settings.sweep.session_retention_seconds))
    blobs = MongoBlobIndex(database)
    await sessions.ensure_indexes()
    await blobs.ensure_indexes()
    if settings.identity.internal is None:  # the settings refuse this; keeps the type honest
        raise RuntimeError("the artifact service needs its internal credential")
    metadata = MetadataClient(
        settings.metadata_addr, settings.metadata_tls, settings.identity.internal.secret
    )
    mtls = settings.tls is not None and settings.tls.client_ca_file is not None
    security, _, close_security = await open_security(settings.identity, database.db, mtls=mtls)
    uploads = Uploads(
        objects,
        sessions,
        blobs,
        metadata,
        LiveHashes(),
        part_bytes=settings.part_bytes,
        parts_in_flight=settings.parts_in_flight,
        session_ttl=timedelta(seconds=settings.sweep.upload_ttl_seconds),
        stall_after=timedelta(seconds=settings.upload_stall_seconds),
    )
    downloads = Downloads(objects, blobs, metadata, chunk_bytes=settings.download_chunk_bytes)
    collector = GarbageCollector(
        objects, blobs, sessions, metadata, uploads, grace=timedelta(seconds=settings.sweep.gc_grace_seconds)
    )
    servicer = ArtifactServicer(uploads, downloads, collector)
    sweeper = Sweeper(collector, settings.sweep)
    sweeper.start()

    async def close_objects() -> None:
        objects.close()

    bucket_probe = BucketProbe(settings.s3)
    # NOT_SERVING while the database or the object store cannot be reached.
    store_health = StoreHealth(
        [StoreProbe("database", database.ping), StoreProbe("object storage", bucket_probe.check)],
        probe_timeout=settings.mongodb_timeouts.probe_seconds,
    )

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
        on_shutdown=[
            sweeper.stop,
            metadata.close,
            close_security,
            database.close,
            close_objects,
            bucket_probe.close,
        ],
        stop=stop,
        security=security,
        tls=settings.tls,
        store_health=store_health,
        metrics_addr=settings.metrics_addr,
    )
