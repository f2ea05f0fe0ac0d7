"""Content addressing through gRPC: dedup, concurrent uploads, on-demand verification, GC."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from minio import Minio
from modelreg_local.stack import ServiceProcess
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, model_pb2
from modelregistry.v1 import manifest_service_pb2 as mf
from modelregistry.v1 import metadata_service_pb2 as md

from tests.support import (
    ACTOR,
    authenticated_channel,
    download,
    error_info,
    list_all_events,
    new_version,
    start_upload,
    upload,
    write_upload,
)

if TYPE_CHECKING:
    from tests.conftest import ReplicaFactory
    from tests.support import ArtifactStub, ManifestStub, MetadataStub

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
GRACE_SECONDS = 2.0


def stored_objects(bucket: tuple[Minio, str]) -> set[str]:
    client, name = bucket
    return {
        o.object_name for o in client.list_objects(name, prefix="blobs/", recursive=True) if o.object_name
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# FindMissingBlobs names the version a push is for (its namespace decides who may ask); the
# answer is about blobs, whatever the version.
ASKING_FOR = "namespaces/blobs/models/any/versions/1"


async def missing(stub: ArtifactStub, *digests: str) -> list[str]:
    request = art.FindMissingBlobsRequest(sha256s=digests, model_version=ASKING_FOR)
    return list((await stub.FindMissingBlobs(request)).missing_sha256s)


async def test_same_content_in_any_model_is_stored_once(
    metadata: MetadataStub, artifacts: ArtifactStub, bucket: tuple[Minio, str]
) -> None:
    data, other = os.urandom(300 * 1024), os.urandom(10)
    assert await missing(artifacts, sha(data), sha(other)) == [sha(data), sha(other)]
    first = await new_version(metadata)
    await upload(artifacts, first.name, "model.bin", data)
    assert await missing(artifacts, sha(data), sha(other)) == [sha(other)]
    objects = stored_objects(bucket)

    # Another model: the client asks first, then skips the bytes.
    second = await new_version(metadata)
    session = await start_upload(artifacts, second.name, "weights/copy.bin", data)
    assert session.state == art.UPLOAD_STATE_FINISHED
    assert session.blob_reused
    assert session.file.sha256 == sha(data)
    # The one-shot upload of the same bytes records the file as well, and stores nothing new.
    third = await new_version(metadata)
    await upload(artifacts, third.name, "again.bin", data)

    assert stored_objects(bucket) == objects
    for version, path in ((second.name, "weights/copy.bin"), (third.name, "again.bin")):
        fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version))
        assert [(f.path, f.sha256) for f in fetched.files] == [(path, sha(data))]
        assert (await download(artifacts, version, path))[1] == data


async def test_a_known_digest_with_another_size_is_refused(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(1000)
    await upload(artifacts, version.name, "a.bin", data)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.StartUpload(
            art.StartUploadRequest(
                spec=art.UploadSpec(
                    model_version=version.name, path="b.bin", size_bytes=999, sha256=sha(data)
                )
            )
        )
    assert error_info(caught.value) == ("SIZE_MISMATCH", ["spec.size_bytes"])


@pytest.mark.parametrize("size", [700 * 1024, 20 * MIB + 1])
async def test_concurrent_uploads_of_the_same_content_store_one_blob(
    metadata: MetadataStub, artifacts: ArtifactStub, bucket: tuple[Minio, str], size: int
) -> None:
    data = os.urandom(size)
    versions = [await new_version(metadata) for _ in range(5)]
    before = stored_objects(bucket)
    stored = await asyncio.gather(*(upload(artifacts, v.name, "same.bin", data) for v in versions))
    assert {(f.size_bytes, f.sha256) for f in stored} == {(size, sha(data))}
    assert len(stored_objects(bucket) - before) == 1
    for version in versions:
        assert (await download(artifacts, version.name, "same.bin"))[1] == data


async def test_many_files_of_one_version_upload_in_parallel(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    files = {f"shard-{i:03d}.bin": os.urandom(10 * 1024) for i in range(40)}
    await asyncio.gather(*(upload(artifacts, version.name, path, data) for path, data in files.items()))
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert {f.path: f.sha256 for f in fetched.files} == {path: sha(data) for path, data in files.items()}


async def test_a_version_of_many_small_files_keeps_an_exact_trail(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    """Concurrent one-shot uploads reach the manifest in batches: each batch is one event that
    lists only the files it added (so the trail grows with the files, not with the manifest's
    size per change), and the version at each event's time holds exactly the files added so far."""
    version = await new_version(metadata)
    files = {f"shards/{i:03d}.bin": os.urandom(1024 + i) for i in range(120)}
    limit = asyncio.Semaphore(16)

    async def one(path: str, data: bytes) -> None:
        async with limit:
            await upload(artifacts, version.name, path, data)

    await asyncio.gather(*(one(path, data) for path, data in files.items()))
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert {f.path: f.sha256 for f in fetched.files} == {path: sha(data) for path, data in files.items()}

    deadline = asyncio.get_running_loop().time() + 15
    while True:  # the relay moves events into the trail a moment after each change
        added = await list_all_events(metadata, resource=version.name, actions=["MODEL_VERSION_FILE_ADDED"])
        paths = [f["path"] for event in added for f in MessageToDict(event.after)["files"]]
        if len(paths) >= len(files) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert sorted(paths) == sorted(files)  # every file in exactly one event
    assert 1 < len(added) < len(files)  # batched, yet more than one change
    assert all(not MessageToDict(event.before)["files"] for event in added)  # nothing was replaced
    seen: set[str] = set()
    for event in added:
        seen.update(f["path"] for f in MessageToDict(event.after)["files"])
        state = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=version.name, time=event.time))
        assert {f.path: f.sha256 for f in state.model_version.files} == {
            path: sha(files[path]) for path in seen
        }


async def test_uploads_that_fail_do_not_hold_back_the_manifest_change_of_the_others(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    """A manifest change waits for the files of the version's other uploads in progress; one that
    fails (here: the bytes do not match the declared digest) stops being waited for at once."""
    version = await new_version(metadata)
    good = {f"good-{i}.bin": os.urandom(2000 + i) for i in range(8)}
    bad = {f"bad-{i}.bin": os.urandom(3000 + i) for i in range(4)}

    async def attempt(path: str, data: bytes) -> str:
        try:
            await upload(artifacts, version.name, path, data, sha256=None if path in good else "0" * 64)
        except grpc.aio.AioRpcError as exc:
            return error_info(exc)[0]
        return "OK"

    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes = await asyncio.gather(*(attempt(path, data) for path, data in {**good, **bad}.items()))
    assert outcomes == ["OK"] * len(good) + ["DIGEST_MISMATCH"] * len(bad)
    assert loop.time() - started < 5  # nobody waited for the failed ones until a timeout
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert {f.path: f.sha256 for f in fetched.files} == {path: sha(data) for path, data in good.items()}


async def test_verify_reports_damaged_and_missing_blobs(
    metadata: MetadataStub, artifacts: ArtifactStub, bucket: tuple[Minio, str]
) -> None:
    version = await new_version(metadata)
    contents = {
        name: os.urandom(2 * MIB + i) for i, name in enumerate(["good.bin", "rotten.bin", "lost.bin"])
    }
    keys = {}
    for path, data in contents.items():
        session = await start_upload(artifacts, version.name, path, data)
        await write_upload(artifacts, session.name, data)
        keys[path] = "blobs/" + session.name.removeprefix("uploads/")
    healthy = await artifacts.VerifyModelVersion(art.VerifyModelVersionRequest(model_version=version.name))
    assert (healthy.checked_files, healthy.checked_bytes, list(healthy.problems)) == (
        3,
        sum(len(d) for d in contents.values()),
        [],
    )

    client, name = bucket
    rotten = bytearray(contents["rotten.bin"])
    rotten[12345] ^= 0xFF
    client.put_object(name, keys["rotten.bin"], io.BytesIO(bytes(rotten)), len(rotten))
    client.remove_object(name, keys["lost.bin"])

    report = await artifacts.VerifyModelVersion(art.VerifyModelVersionRequest(model_version=version.name))
    assert report.model_version == version.name
    assert {(p.path, p.problem) for p in report.problems} == {
        ("rotten.bin", art.BLOB_PROBLEM_DIGEST_MISMATCH),
        ("lost.bin", art.BLOB_PROBLEM_MISSING),
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, version.name, "rotten.bin")
    assert (caught.value.code(), error_info(caught.value)[0]) == (grpc.StatusCode.DATA_LOSS, "BLOB_CORRUPT")
    assert (await download(artifacts, version.name, "good.bin"))[1] == contents["good.bin"]


@pytest.fixture(scope="module")
def collector(artifact_replicas: ReplicaFactory) -> ServiceProcess:
    """A replica with a short grace period and no periodic collection: tests collect on request."""
    return artifact_replicas(MODELREG_GC_GRACE_SECONDS=str(GRACE_SECONDS), MODELREG_GC_INTERVAL_SECONDS="0")


async def collect(address: str, *, dry_run: bool) -> art.CollectGarbageResponse:
    async with authenticated_channel(address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        return await stub.CollectGarbage(art.CollectGarbageRequest(dry_run=dry_run), metadata=ACTOR)


async def test_gc_keeps_a_blob_while_any_version_references_it(
    metadata: MetadataStub, artifacts: ArtifactStub, collector: ServiceProcess, bucket: tuple[Minio, str]
) -> None:
    shared = os.urandom(64 * 1024)
    one, two = await new_version(metadata), await new_version(metadata)
    await upload(artifacts, one.name, "model.bin", shared)
    await upload(artifacts, two.name, "model.bin", shared)
    objects_with_blob = stored_objects(bucket)
    # Version one moves on to other bytes: the blob is still version two's.
    await upload(artifacts, one.name, "model.bin", os.urandom(100), replace=True)
    await asyncio.sleep(GRACE_SECONDS + 0.5)
    for dry_run in (True, False):
        report = await collect(collector.address, dry_run=dry_run)
        assert sha(shared) not in report.deleted_sha256s
    assert (await download(artifacts, two.name, "model.bin"))[1] == shared

    # Now no manifest has it: a dry run reports it with its size and deletes nothing.
    await upload(artifacts, two.name, "model.bin", os.urandom(100), replace=True)
    await asyncio.sleep(GRACE_SECONDS + 0.5)
    dry = await collect(collector.address, dry_run=True)
    assert dry.dry_run
    assert sha(shared) in dry.deleted_sha256s
    assert dry.deleted_bytes >= len(shared)
    assert await missing(artifacts, sha(shared)) == []

    real = await collect(collector.address, dry_run=False)
    assert sha(shared) in real.deleted_sha256s
    assert real.deleted_blobs >= 1
    assert await missing(artifacts, sha(shared)) == [sha(shared)]
    assert len(objects_with_blob - stored_objects(bucket)) >= 1
    # The same bytes uploaded again later are simply stored again.
    three = await new_version(metadata)
    await upload(artifacts, three.name, "model.bin", shared)
    assert (await download(artifacts, three.name, "model.bin"))[1] == shared


async def one_deleted_of_two_sharing_a_blob(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> tuple[model_pb2.ModelVersion, model_pb2.ModelVersion, bytes, bytes]:
    """Two versions that share `model.bin`, the first also with an `extra.bin` of its own; the
    first is then soft-deleted. Returns both, the shared bytes and the first's own bytes."""
    shared, own = os.urandom(20_000), os.urandom(30_000)
    one, two = await new_version(metadata), await new_version(metadata)
    await upload(artifacts, one.name, "model.bin", shared)
    await upload(artifacts, one.name, "extra.bin", own)
    await upload(artifacts, two.name, "model.bin", shared)
    await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=one.name), metadata=ACTOR)
    return one, two, shared, own


async def test_gc_keeps_blobs_of_soft_deleted_versions(
    metadata: MetadataStub, manifests: ManifestStub, artifacts: ArtifactStub, collector: ServiceProcess
) -> None:
    """A blob shared by two versions survives the deletion of one; a deleted version's own blob
    stays too (soft delete can be undone: blobs go only when a version is purged)."""
    one, _, shared, own = await one_deleted_of_two_sharing_a_blob(metadata, artifacts)
    await asyncio.sleep(GRACE_SECONDS + 0.5)

    references = await manifests.CheckBlobReferences(
        mf.CheckBlobReferencesRequest(sha256s=[sha(own), sha(shared)])
    )
    assert list(references.referenced_sha256s) == [sha(own), sha(shared)]
    report = await collect(collector.address, dry_run=False)
    assert {sha(shared), sha(own)}.isdisjoint(report.deleted_sha256s)
    assert await missing(artifacts, sha(shared), sha(own)) == []
    await metadata.UndeleteModelVersion(md.UndeleteModelVersionRequest(name=one.name), metadata=ACTOR)
    assert (await download(artifacts, one.name, "extra.bin"))[1] == own


async def test_gc_after_a_purge_deletes_the_purged_versions_own_blobs_and_keeps_shared_ones(
    metadata: MetadataStub, manifests: ManifestStub, artifacts: ArtifactStub, collector: ServiceProcess
) -> None:
    one, two, shared, own = await one_deleted_of_two_sharing_a_blob(metadata, artifacts)
    await metadata.PurgeModelVersion(md.PurgeModelVersionRequest(name=one.name), metadata=ACTOR)

    references = await manifests.CheckBlobReferences(
        mf.CheckBlobReferencesRequest(sha256s=[sha(own), sha(shared)])
    )
    assert list(references.referenced_sha256s) == [sha(shared)]
    await asyncio.sleep(GRACE_SECONDS + 0.5)
    dry = await collect(collector.address, dry_run=True)
    assert sha(own) in dry.deleted_sha256s
    assert sha(shared) not in dry.deleted_sha256s
    assert await missing(artifacts, sha(own), sha(shared)) == []  # a dry run deletes nothing

    real = await collect(collector.address, dry_run=False)
    assert sha(own) in real.deleted_sha256s
    assert sha(shared) not in real.deleted_sha256s
    assert await missing(artifacts, sha(own), sha(shared)) == [sha(own)]
    assert (await download(artifacts, two.name, "model.bin"))[1] == shared
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, one.name, "extra.bin")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_blob_reference_questions_take_digests_only(manifests: ManifestStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await manifests.CheckBlobReferences(mf.CheckBlobReferencesRequest(sha256s=["../../etc/passwd"]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["sha256s"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await manifests.CheckBlobReferences(mf.CheckBlobReferencesRequest(sha256s=["a" * 64] * 1001))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = await manifests.CheckBlobReferences(mf.CheckBlobReferencesRequest())
    assert list(empty.referenced_sha256s) == []


async def test_gc_waits_for_the_grace_period(
    metadata: MetadataStub, artifacts: ArtifactStub, collector: ServiceProcess
) -> None:
    version = await new_version(metadata)
    dropped = os.urandom(5000)
    await upload(artifacts, version.name, "model.bin", dropped)
    await upload(artifacts, version.name, "model.bin", os.urandom(5000), replace=True)
    early = await collect(collector.address, dry_run=False)
    assert sha(dropped) not in early.deleted_sha256s
    assert early.kept_blobs >= 1
    assert await missing(artifacts, sha(dropped)) == []
    await asyncio.sleep(GRACE_SECONDS + 0.5)
    late = await collect(collector.address, dry_run=False)
    assert sha(dropped) in late.deleted_sha256s


async def test_gc_spares_blobs_that_an_open_session_declares(
    metadata: MetadataStub, artifacts: ArtifactStub, collector: ServiceProcess
) -> None:
    data = os.urandom(4000)
    waiting = await new_version(metadata)
    session = await start_upload(artifacts, waiting.name, "pending.bin", data)
    assert session.state == art.UPLOAD_STATE_ACTIVE
    # Meanwhile the same bytes are stored by another version and then dropped by it.
    other = await new_version(metadata)
    await upload(artifacts, other.name, "x.bin", data)
    await upload(artifacts, other.name, "x.bin", os.urandom(10), replace=True)
    await asyncio.sleep(GRACE_SECONDS + 0.5)

    report = await collect(collector.address, dry_run=False)
    assert sha(data) not in report.deleted_sha256s
    done = await write_upload(artifacts, session.name, data)
    assert done.blob_reused

    await upload(artifacts, waiting.name, "pending.bin", os.urandom(10), replace=True)
    await asyncio.sleep(GRACE_SECONDS + 0.5)
    assert sha(data) in (await collect(collector.address, dry_run=False)).deleted_sha256s
