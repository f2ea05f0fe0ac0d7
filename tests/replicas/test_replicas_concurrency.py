"""Two metadata and two artifact replicas on one store, MongoDB's semantics: the invariants that
one process used to keep with its locks hold across processes (docs/metadata-service.md)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from tests.replicas.cluster import Cluster, bearer
from tests.support import error_info

if TYPE_CHECKING:
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CHUNK = 1 * MIB


def admin(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    return bearer(cluster.admin_token)


async def new_model(stub: MetadataStub, cluster: Cluster, namespace: str = "replicas") -> model_pb2.Model:
    with_admin = admin(cluster)
    try:
        await stub.CreateNamespace(
            md.CreateNamespaceRequest(namespace_id=namespace, namespace=model_pb2.Namespace()),
            metadata=with_admin,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    return await stub.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id=f"m-{uuid.uuid4().hex[:10]}"),
        metadata=with_admin,
    )


async def create_versions(
    replicas: list[MetadataStub], cluster: Cluster, model: str, count: int
) -> list[model_pb2.ModelVersion]:
    """`count` versions created at once, alternating between the replicas."""
    return list(
        await asyncio.gather(
            *(
                replicas[i % len(replicas)].CreateModelVersion(
                    md.CreateModelVersionRequest(parent=model, request_id=str(uuid.uuid4())),
                    metadata=admin(cluster),
                )
                for i in range(count)
            )
        )
    )


async def events_of(stub: MetadataStub, cluster: Cluster, model: str, count: int) -> list[event_pb2.Event]:
    """The model's events once there are `count` (the relay places them a moment after)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        events: list[event_pb2.Event] = []
        token = ""
        while True:
            page = await stub.ListEvents(
                md.ListEventsRequest(model=model, page_size=200, page_token=token), metadata=admin(cluster)
            )
            events += page.events
            token = page.next_page_token
            if not token:
                break
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.1)


async def test_concurrent_creations_on_both_replicas_are_numbered_without_gaps_with_one_event_each(
    cluster: Cluster, metadata_replicas: list[MetadataStub]
) -> None:
    model = await new_model(metadata_replicas[0], cluster)

    created = await create_versions(metadata_replicas, cluster, model.name, 64)

    assert sorted(int(v.name.rsplit("/", 1)[1]) for v in created) == list(range(1, 65))
    listed = await metadata_replicas[1].ListModelVersions(
        md.ListModelVersionsRequest(parent=model.name, page_size=100), metadata=admin(cluster)
    )
    assert {v.name for v in listed.model_versions} == {v.name for v in created}
    events = await events_of(metadata_replicas[0], cluster, model.name, 64 + 1)
    created_events = [e for e in events if e.action == "MODEL_VERSION_CREATED"]
    assert sorted(e.resource for e in created_events) == sorted(v.name for v in created)


async def test_concurrent_alias_moves_with_one_etag_have_exactly_one_winner(
    cluster: Cluster, metadata_replicas: list[MetadataStub]
) -> None:
    model = await new_model(metadata_replicas[0], cluster)
    versions = await create_versions(metadata_replicas, cluster, model.name, 8)
    first = await metadata_replicas[0].SetAlias(
        md.SetAliasRequest(name=f"{model.name}/aliases/champion", model_version=versions[0].name),
        metadata=admin(cluster),
    )

    async def move(i: int) -> grpc.StatusCode:
        try:
            await metadata_replicas[i % 2].SetAlias(
                md.SetAliasRequest(
                    name=f"{model.name}/aliases/champion",
                    model_version=versions[1 + i % 7].name,
                    etag=first.etag,
                ),
                metadata=admin(cluster),
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(move(i) for i in range(64)))

    assert codes.count(grpc.StatusCode.OK) == 1
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}


async def seal(stub: MetadataStub, cluster: Cluster, version: str) -> None:
    await stub.SealModelVersion(md.SealModelVersionRequest(name=version), metadata=admin(cluster))


async def approved_versions(
    replicas: list[MetadataStub], cluster: Cluster, model: str, count: int
) -> list[str]:
    """READY versions, each approved by a second principal (four eyes)."""
    approver = bearer(cluster.token("user:replica-approver"))
    names = [v.name for v in await create_versions(replicas, cluster, model, count)]
    for name in names:
        await seal(replicas[0], cluster, name)
        await replicas[1].SubmitModelVersionForReview(
            md.SubmitModelVersionForReviewRequest(name=name), metadata=admin(cluster)
        )
        await replicas[0].ApproveModelVersion(
            md.ApproveModelVersionRequest(name=name, comment="ok"), metadata=approver
        )
    return names


async def after(start: Callable[[], Awaitable[object]], seconds: float) -> object:
    """The call `start` makes, `seconds` from now (a gRPC call is sent when it is made)."""
    await asyncio.sleep(seconds)
    return await start()


async def outcome(call: Awaitable[object]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return error_info(exc)[0] or exc.code().name
    return "OK"


@pytest.mark.parametrize("change", ["archive", "delete"])
async def test_a_protected_alias_never_ends_on_a_version_archived_or_deleted_by_the_other_replica(
    cluster: Cluster, metadata_replicas: list[MetadataStub], change: str
) -> None:
    a, b = metadata_replicas
    model = await new_model(a, cluster)
    serving, candidate = await approved_versions(metadata_replicas, cluster, model.name, 2)
    alias = f"{model.name}/aliases/production"
    await a.SetAlias(md.SetAliasRequest(name=alias, model_version=serving), metadata=admin(cluster))
    await a.ProtectAlias(
        md.ProtectAliasRequest(protection=model_pb2.AliasProtection(name=alias)), metadata=admin(cluster)
    )
    seen: set[tuple[str, str]] = set()

    for attempt in range(40):
        move = a.SetAlias(md.SetAliasRequest(name=alias, model_version=candidate), metadata=admin(cluster))

        def other() -> Awaitable[object]:
            if change == "archive":
                return b.ArchiveModelVersion(
                    md.ArchiveModelVersionRequest(name=candidate), metadata=admin(cluster)
                )
            return b.DeleteModelVersion(md.DeleteModelVersionRequest(name=candidate), metadata=admin(cluster))

        # The move does more before it writes (reads, role and gate checks): a head start of
        # 0-28 ms, varied, lets either side win some rounds and the two overlap in others.
        moved, changed = await asyncio.gather(outcome(move), outcome(after(other, (attempt % 8) * 0.004)))
        seen.add((moved, changed))
        assert not (moved == "OK" and changed == "OK"), (
            "both the move and the change of its target went through"
        )

        target = await b.GetModelVersionByAlias(
            md.GetModelVersionByAliasRequest(name=alias), metadata=admin(cluster)
        )
        assert target.state == model_pb2.MODEL_VERSION_STATE_READY
        assert target.review_state == model_pb2.MODEL_VERSION_REVIEW_STATE_APPROVED
        # Back to the start: the alias on `serving`, the candidate READY again.
        if target.name == candidate:
            await a.SetAlias(md.SetAliasRequest(name=alias, model_version=serving), metadata=admin(cluster))
        elif change == "archive" and changed == "OK":
            await b.UnarchiveModelVersion(
                md.UnarchiveModelVersionRequest(name=candidate), metadata=admin(cluster)
            )
        elif changed == "OK":
            await b.UndeleteModelVersion(
                md.UndeleteModelVersionRequest(name=candidate), metadata=admin(cluster)
            )

    # Both orders happened: the race was real, not one side always first.
    assert {moved for moved, _ in seen} >= {"OK"}
    assert {changed for _, changed in seen} >= {"OK"}


def spec_for(version: str, path: str, data: bytes) -> art.UploadSpec:
    return art.UploadSpec(
        model_version=version, path=path, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


async def write_messages(
    session: str, data: bytes, start: int, end: int, finish: bool
) -> AsyncIterator[art.WriteUploadRequest]:
    yield art.WriteUploadRequest(upload_session=session, write_offset=start)
    for offset in range(start, end, CHUNK):
        yield art.WriteUploadRequest(write_offset=offset, data=data[offset : min(offset + CHUNK, end)])
    if finish:
        yield art.WriteUploadRequest(write_offset=end, finish_write=True)


async def test_an_upload_cut_on_one_artifact_replica_is_finished_on_the_other_and_gc_on_both_keeps_it(
    cluster: Cluster, metadata_replicas: list[MetadataStub], artifact_replicas: list[ArtifactStub]
) -> None:
    a, b = artifact_replicas
    version = (
        await create_versions(
            metadata_replicas, cluster, (await new_model(metadata_replicas[0], cluster)).name, 1
        )
    )[0]
    data = os.urandom(24 * MIB + 11)
    session = await a.StartUpload(
        art.StartUploadRequest(spec=spec_for(version.name, "weights.bin", data)), metadata=admin(cluster)
    )
    # A stream that ends without finishing, as a cut would: on replica A.
    paused = await a.WriteUpload(
        write_messages(session.name, data, 0, 20 * MIB, finish=False), metadata=admin(cluster)
    )
    assert 0 < paused.committed_size <= 20 * MIB

    status = await b.GetUploadSession(art.GetUploadSessionRequest(name=session.name), metadata=admin(cluster))
    assert status.committed_size == paused.committed_size
    done = await b.WriteUpload(
        write_messages(session.name, data, status.committed_size, len(data), finish=True),
        metadata=admin(cluster),
    )
    assert done.state == art.UPLOAD_STATE_FINISHED
    await seal(metadata_replicas[1], cluster, version.name)

    collected = await asyncio.gather(
        *(
            replica.CollectGarbage(art.CollectGarbageRequest(dry_run=False), metadata=admin(cluster))
            for replica in (a, b)
        )
    )
    digest = hashlib.sha256(data).hexdigest()
    assert all(digest not in c.deleted_sha256s for c in collected)
    for replica in (a, b):
        received = bytearray()
        async for message in replica.DownloadFile(
            art.DownloadFileRequest(model_version=version.name, path="weights.bin"), metadata=admin(cluster)
        ):
            received += message.data
        assert hashlib.sha256(received).hexdigest() == digest


async def test_watching_one_replica_sees_every_event_written_through_the_other_in_order(
    cluster: Cluster, metadata_replicas: list[MetadataStub]
) -> None:
    a, b = metadata_replicas
    model = await new_model(b, cluster)
    watch = a.WatchEvents(md.WatchEventsRequest(from_now=True), metadata=admin(cluster))
    received: list[event_pb2.Event] = []

    async def follow() -> None:
        async for event in watch:
            received.append(event)
            if sum(1 for e in received if e.resource.startswith(model.name + "/versions/")) >= 30:
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.5)  # the watch is open before the writes
    for _ in range(30):
        await b.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name), metadata=admin(cluster))
    await asyncio.wait_for(follower, 30)
    watch.cancel()

    sequences = [e.sequence for e in received]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), "a gap or a reordering"
    ours = [e.resource for e in received if e.resource.startswith(model.name + "/versions/")]
    assert ours == [f"{model.name}/versions/{n}" for n in range(1, 31)]
