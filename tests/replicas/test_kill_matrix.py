"""The kill matrix: `kill -9` of each service replica and each store process, during a burst of
version creations and during an upload, on the multi-replica cluster.

After the killed process is restarted, clients that retry as the protocol says (UNAVAILABLE, and
a create's deadline, since its request id makes a repeat return the first result) finish their
work, and: nothing acknowledged is lost, no version number repeats or is skipped, the audit
trail has no gap and one creation event per version, a pushed file is pulled back byte for byte,
and after garbage collection every object in S3 is the blob of a stored file (no orphan).
The table of these outcomes is in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from minio import Minio
from modelreg import AsyncClient, ClientSettings, Direction, Outcome, RetryPolicy
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, event_pb2, metadata_service_pb2_grpc, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from tests.replicas.cluster import Cluster, bearer, channel
from tests.replicas.test_replicas_concurrency import new_model

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
VICTIMS = ("metadata-a", "artifacts-a", "ferretdb", "seaweedfs")
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
BURST = 40
OUTAGE_SECONDS = 1.0


async def kill_and_restart(cluster: Cluster, victim: str) -> None:
    await asyncio.to_thread(cluster.kill, victim)
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(cluster.restart, victim)


async def create_retrying(stub: MetadataStub, token: str, parent: str) -> str:
    """A create that retries as the protocol says, with one request id for all its attempts."""
    request = md.CreateModelVersionRequest(parent=parent, request_id=str(uuid.uuid4()))
    for attempt in range(80):
        try:
            created = await stub.CreateModelVersion(request, metadata=bearer(token), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRIED:
                raise
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            continue
        return created.name
    raise AssertionError(f"{request.request_id} never succeeded")


async def all_events(stub: MetadataStub, token: str) -> list[event_pb2.Event]:
    events: list[event_pb2.Event] = []
    page_token = ""
    while True:
        page = await stub.ListEvents(
            md.ListEventsRequest(page_size=500, page_token=page_token), metadata=bearer(token), timeout=30
        )
        events += page.events
        page_token = page.next_page_token
        if not page_token:
            return events


async def settled_trail(stub: MetadataStub, token: str, model: str, versions: int) -> list[event_pb2.Event]:
    """The whole trail once the model's creation events are all in it (crashed writers' outbox
    entries are swept up by the other replica's relay)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        events = await all_events(stub, token)
        created = [
            e for e in events if e.action == "MODEL_VERSION_CREATED" and e.resource.startswith(model + "/")
        ]
        if len(created) >= versions or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("victim", VICTIMS)
async def test_a_burst_of_creations_survives_a_kill(cluster: Cluster, victim: str) -> None:
    token = cluster.admin_token
    async with channel(cluster.metadata) as opened:
        stub = metadata_service_pb2_grpc.MetadataServiceStub(opened)
        model = await new_model(stub, cluster, namespace="kills")
        acknowledged: list[str] = []
        limit, under_way = asyncio.Semaphore(8), asyncio.Event()

        async def create() -> None:
            async with limit:
                acknowledged.append(await create_retrying(stub, token, model.name))
            if len(acknowledged) >= BURST // 4:
                under_way.set()

        burst = [asyncio.create_task(create()) for _ in range(BURST)]
        await under_way.wait()
        await kill_and_restart(cluster, victim)
        await asyncio.gather(*burst)

        listed = await stub.ListModelVersions(
            md.ListModelVersionsRequest(parent=model.name, page_size=100), metadata=bearer(token), timeout=30
        )
        numbers = sorted(int(v.name.rsplit("/", 1)[1]) for v in listed.model_versions)
        assert numbers == list(range(1, BURST + 1)), "a number repeated or skipped"
        assert sorted(acknowledged) == sorted(v.name for v in listed.model_versions), (
            "an acknowledged create is lost"
        )

        trail = await settled_trail(stub, token, model.name, BURST)
        created = [
            e.resource
            for e in trail
            if e.action == "MODEL_VERSION_CREATED" and e.resource.startswith(model.name + "/")
        ]
        assert sorted(created) == sorted(acknowledged), "not exactly one creation event per version"
        sequences = sorted(e.sequence for e in trail)
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), (
            "a gap in the audit trail"
        )


class KillWhenHalfSent:
    """Progress that tells the test when the upload is well under way."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.sent = 0
        self.uploading = False
        self.reached = asyncio.Event()

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        self.uploading = direction is Direction.UPLOAD

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        if self.uploading:
            self.sent += nbytes
            if self.sent >= self.threshold:
                self.reached.set()

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        pass

    def retrying(self, path: str, reason: str, delay: float) -> None:
        pass

    def end(self) -> None:
        if self.uploading:
            self.reached.set()  # finished before the threshold: the kill comes after, still tested


def client_settings(cluster: Cluster, cache: Path) -> ClientSettings:
    base = ClientSettings.from_environment(
        {}, metadata_addr=cluster.metadata, artifact_addr=cluster.artifacts
    )
    return replace(
        base,
        token=cluster.admin_token,
        cache_dir=cache,
        retry=RetryPolicy(attempts=40, initial_backoff=0.1, max_backoff=1.0),
        chunk_bytes=1 * MIB,
    )


def stored_digests(cluster: Cluster) -> list[str]:
    """The SHA-256 of every object under the bucket's blob prefix (read back from S3)."""
    s3 = cluster.stores.endpoints.s3
    client = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure)
    digests = []
    for item in client.list_objects(s3.bucket, prefix="blobs/", recursive=True):
        response = client.get_object(s3.bucket, item.object_name or "")
        try:
            digests.append(hashlib.sha256(response.read()).hexdigest())
        finally:
            response.close()
            response.release_conn()
    return digests


async def referenced_digests(stub: MetadataStub, token: str) -> set[str]:
    """Every digest a manifest of the cluster lists (deleted versions included: they keep blobs)."""
    referenced: set[str] = set()
    namespaces = await stub.ListNamespaces(md.ListNamespacesRequest(page_size=100), metadata=bearer(token))
    for namespace in namespaces.namespaces:
        models = await stub.ListModels(
            md.ListModelsRequest(parent=namespace.name, page_size=1000, show_deleted=True),
            metadata=bearer(token),
        )
        for model in models.models:
            page_token = ""
            while True:
                page = await stub.ListModelVersions(
                    md.ListModelVersionsRequest(
                        parent=model.name, page_size=500, page_token=page_token, show_deleted=True
                    ),
                    metadata=bearer(token),
                )
                referenced |= {f.sha256 for v in page.model_versions for f in v.files}
                page_token = page.next_page_token
                if not page_token:
                    break
    return referenced


@pytest.mark.parametrize("victim", VICTIMS)
async def test_an_upload_survives_a_kill_and_gc_leaves_no_orphan(
    cluster: Cluster, victim: str, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    source.mkdir()
    weights = os.urandom(40 * MIB + 3)
    (source / "weights.bin").write_bytes(weights)
    (source / "config.json").write_bytes(os.urandom(1000))
    progress = KillWhenHalfSent(12 * MIB)
    model = f"kills/upload-{uuid.uuid4().hex[:8]}"

    async with AsyncClient(settings=client_settings(cluster, tmp_path / "cache")) as registry:
        push = asyncio.create_task(registry.push(model, source, progress=progress))
        await progress.reached.wait()
        await kill_and_restart(cluster, victim)
        pushed = await push

    async with AsyncClient(settings=client_settings(cluster, tmp_path / "other-cache")) as registry:
        pulled = await registry.pull(pushed.version.name, tmp_path / "pulled")
    assert (pulled.destination / "weights.bin").read_bytes() == weights

    async with channel(cluster.artifacts) as opened:
        artifacts = artifact_service_pb2_grpc.ArtifactServiceStub(opened)
        await artifacts.CollectGarbage(
            art.CollectGarbageRequest(dry_run=False), metadata=bearer(cluster.admin_token)
        )
    async with channel(cluster.metadata) as opened:
        referenced = await referenced_digests(
            metadata_service_pb2_grpc.MetadataServiceStub(opened), cluster.admin_token
        )
    stored = await asyncio.to_thread(stored_digests, cluster)
    assert hashlib.sha256(weights).hexdigest() in stored
    assert set(stored) <= referenced, "an object in S3 that no manifest lists survived GC"
    assert len(stored) == len(set(stored)), "a blob stored twice"
    assert pushed.version.state == model_pb2.MODEL_VERSION_STATE_READY
