"""Resumable upload sessions through gRPC: resume after a dropped stream, a SIGKILL, on another replica."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import google_crc32c
import grpc
import pytest
from minio import Minio
from modelreg_local.stack import ServiceProcess
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc
from modelregistry.v1 import metadata_service_pb2 as md

from tests.support import (
    ACTOR,
    CHUNK,
    authenticated_channel,
    download,
    error_info,
    error_metadata,
    new_version,
    session_of,
    spec_for,
    start_upload,
    upload_messages,
    write_upload,
)

if TYPE_CHECKING:
    from tests.conftest import ReplicaFactory
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


async def send_then_drop(stub: ArtifactStub, session: str, data: bytes, start: int, upto: int) -> None:
    """Stream data[start:upto] into a session, then drop the connection as a crashing client would.

    The drop comes once the server has recorded at least one part of it, so the test does not
    depend on how fast a loaded machine moves the bytes.
    """
    call = stub.WriteUpload(metadata=ACTOR)  # type: ignore[call-arg]  # aio: write() API, no iterator
    await call.write(art.WriteUploadRequest(upload_session=session, write_offset=start))
    for offset in range(start, upto, CHUNK):
        await call.write(
            art.WriteUploadRequest(write_offset=offset, data=data[offset : min(offset + CHUNK, upto)])
        )
    first = (await session_of(stub, session)).committed_size
    for _ in range(200):
        if (await session_of(stub, session)).committed_size > first:
            break
        await asyncio.sleep(0.1)
    call.cancel()


async def settled_committed_size(stub: ArtifactStub, session: str, patience: float = 20) -> int:
    """The committed size once the server has finished recording the parts of a broken stream."""
    last, deadline = -1, asyncio.get_running_loop().time() + patience
    while asyncio.get_running_loop().time() < deadline:
        current = (await session_of(stub, session)).committed_size
        if current == last and current > 0:
            return current
        last = current
        await asyncio.sleep(0.3)
    raise AssertionError(f"committed_size of {session} did not settle (last {last})")


async def manifest(metadata: MetadataStub, version: str) -> dict[str, tuple[int, str]]:
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version))
    return {f.path: (f.size_bytes, f.sha256) for f in fetched.files}


async def test_session_round_trip_reports_its_state(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    data = os.urandom(3 * MIB + 5)
    session = await start_upload(artifacts, version.name, "weights.bin", data)
    assert session.name.startswith("uploads/")
    assert session.state == art.UPLOAD_STATE_ACTIVE
    assert session.committed_size == 0
    assert session.expire_time.seconds > session.create_time.seconds
    assert await manifest(metadata, version.name) == {}

    done = await write_upload(artifacts, session.name, data)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (done.file.path, done.file.size_bytes, done.file.sha256) == (
        "weights.bin",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert (await session_of(artifacts, session.name)).state == art.UPLOAD_STATE_FINISHED
    assert await manifest(metadata, version.name) == {
        "weights.bin": (len(data), hashlib.sha256(data).hexdigest())
    }
    _, received = await download(artifacts, version.name, "weights.bin")
    assert received == data


async def test_resume_after_the_client_drops_mid_stream(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(40 * MIB + 123)
    session = await start_upload(artifacts, version.name, "big.bin", data)
    part = session.part_size_bytes

    await send_then_drop(artifacts, session.name, data, 0, 35 * MIB)
    committed = await settled_committed_size(artifacts, session.name)
    assert committed % part == 0
    assert 0 < committed <= 35 * MIB

    # Resuming anywhere else than the committed size is refused, and the error says where to go.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        # One message only: a client still streaming when the server refuses sees INTERNAL from
        # grpc's client core (its next send fails) instead of the server's status.
        await write_upload(
            artifacts, session.name, data, committed + CHUNK, end=committed + CHUNK + 10, finish=False
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == ("WRITE_OFFSET_MISMATCH", ["write_offset"])
    assert error_metadata(caught.value)["committed_size"] == str(committed)

    done = await write_upload(artifacts, session.name, data, committed)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert done.committed_size == len(data)
    _, received = await download(artifacts, version.name, "big.bin")
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


async def test_a_stream_may_end_without_finishing_and_continue_later(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(20 * MIB)
    session = await start_upload(artifacts, version.name, "paused.bin", data)
    paused = await write_upload(artifacts, session.name, data, 0, end=18 * MIB, finish=False)
    assert paused.state == art.UPLOAD_STATE_ACTIVE
    assert paused.committed_size == paused.part_size_bytes  # the unfinished part is sent again
    done = await write_upload(artifacts, session.name, data, paused.committed_size)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "paused.bin"))[1] == data


async def test_continue_on_another_replica(
    metadata: MetadataStub, artifacts: ArtifactStub, second_replica: ServiceProcess
) -> None:
    """The session lives in the database and the parts in S3: any replica can finish it."""
    version = await new_version(metadata)
    data = os.urandom(38 * MIB + 7)
    session = await start_upload(artifacts, version.name, "moved.bin", data)
    await send_then_drop(artifacts, session.name, data, 0, 36 * MIB)
    committed = await settled_committed_size(artifacts, session.name)

    async with authenticated_channel(second_replica.address) as channel:
        other = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        assert (await session_of(other, session.name)).committed_size == committed
        done = await write_upload(other, session.name, data, committed)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "moved.bin"))[1] == data


async def test_a_replica_without_the_hash_still_rejects_wrong_bytes(
    metadata: MetadataStub, artifacts: ArtifactStub, second_replica: ServiceProcess
) -> None:
    """The hash of the first parts is gone with the replica that received them: the other one
    reads the completed object back before it becomes visible, and refuses it."""
    version = await new_version(metadata)
    data = os.urandom(36 * MIB)
    session = await start_upload(artifacts, version.name, "tampered.bin", data)
    await send_then_drop(artifacts, session.name, data, 0, 34 * MIB)
    committed = await settled_committed_size(artifacts, session.name)
    tampered = data[:committed] + os.urandom(len(data) - committed)

    async with authenticated_channel(second_replica.address) as channel:
        other = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await write_upload(other, session.name, tampered, committed)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == ("DIGEST_MISMATCH", ["spec.sha256"])
    failed = await session_of(artifacts, session.name)
    assert failed.state == art.UPLOAD_STATE_FAILED
    assert failed.failure_reason == "DIGEST_MISMATCH"
    assert hashlib.sha256(tampered).hexdigest() in failed.failure_message
    assert await manifest(metadata, version.name) == {}
    missing = await artifacts.FindMissingBlobs(
        art.FindMissingBlobsRequest(sha256s=[hashlib.sha256(data).hexdigest()], model_version=version.name)
    )
    assert list(missing.missing_sha256s) == [hashlib.sha256(data).hexdigest()]


async def test_resume_after_the_service_is_killed_and_restarted(
    metadata: MetadataStub, artifacts: ArtifactStub, artifact_replicas: ReplicaFactory
) -> None:
    replica = artifact_replicas(MODELREG_S3_PART_MIB="5")
    version = await new_version(metadata)
    data = os.urandom(33 * MIB + 11)
    async with authenticated_channel(replica.address) as channel:
        doomed = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        session = await start_upload(doomed, version.name, "survivor.bin", data)
        call = doomed.WriteUpload(metadata=ACTOR)  # type: ignore[call-arg]  # aio: write() API
        await call.write(art.WriteUploadRequest(upload_session=session.name, write_offset=0))
        offset = 0
        while (await session_of(artifacts, session.name)).committed_size < 2 * session.part_size_bytes:
            assert offset < len(data) - CHUNK, "the replica recorded no part"
            await call.write(art.WriteUploadRequest(write_offset=offset, data=data[offset : offset + CHUNK]))
            offset += CHUNK
        replica.kill()  # SIGKILL mid-stream: no draining, no clean-up
        call.cancel()

    replica.start()
    replica.wait_healthy()
    async with authenticated_channel(replica.address) as channel:
        restarted = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        survived = await session_of(restarted, session.name)
        assert survived.state == art.UPLOAD_STATE_ACTIVE
        assert survived.committed_size >= 2 * session.part_size_bytes
        assert survived.committed_size % session.part_size_bytes == 0
        done = await write_upload(restarted, session.name, data, survived.committed_size)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "survivor.bin"))[1] == data


async def test_bad_writes_get_precise_errors(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    data = os.urandom(1000)
    session = await start_upload(artifacts, version.name, "a.bin", data)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data, 10)
    assert error_info(caught.value) == ("WRITE_OFFSET_MISMATCH", ["write_offset"])
    assert error_metadata(caught.value)["committed_size"] == "0"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data + b"extra")
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_info(caught.value)[0] == "PAST_DECLARED_SIZE"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data, end=500)
    assert error_info(caught.value) == ("SIZE_MISMATCH", ["spec.size_bytes"])
    assert (await session_of(artifacts, session.name)).state == art.UPLOAD_STATE_ACTIVE

    await write_upload(artifacts, session.name, data)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value)[0] == "UPLOAD_FINISHED"

    cancelled = await start_upload(artifacts, version.name, "b.bin", os.urandom(1000))
    ended = await artifacts.CancelUploadSession(art.CancelUploadSessionRequest(name=cancelled.name))
    assert ended.state == art.UPLOAD_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, cancelled.name, data)
    assert (caught.value.code(), error_info(caught.value)[0]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "UPLOAD_CANCELLED",
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await session_of(artifacts, "uploads/" + "0" * 32)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for name in ("uploads/../x", "sessions/abc", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await session_of(artifacts, name)
        assert error_info(caught.value)[1] == ["name"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, "uploads/nope", data)
    assert error_info(caught.value)[1] == ["upload_session"]


async def test_a_corrupted_chunk_is_caught_by_its_crc32c(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(2 * CHUNK)
    session = await start_upload(artifacts, version.name, "crc.bin", data)

    def messages(corrupt: bool) -> AsyncIterator[art.WriteUploadRequest]:
        async def generate() -> AsyncIterator[art.WriteUploadRequest]:
            yield art.WriteUploadRequest(upload_session=session.name)
            for offset in range(0, len(data), CHUNK):
                piece = data[offset : offset + CHUNK]
                checksum = google_crc32c.value(piece)
                sent = bytes([piece[0] ^ 1]) + piece[1:] if corrupt and offset else piece
                yield art.WriteUploadRequest(write_offset=offset, data=sent, crc32c=checksum)
            yield art.WriteUploadRequest(write_offset=len(data), finish_write=True)

        return generate()

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.WriteUpload(messages(corrupt=True), metadata=ACTOR)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == ("CHUNK_CHECKSUM_MISMATCH", ["crc32c"])
    assert (await session_of(artifacts, session.name)).state == art.UPLOAD_STATE_ACTIVE

    done = await artifacts.WriteUpload(messages(corrupt=False), metadata=ACTOR)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "crc.bin"))[1] == data


async def test_sealing_refuses_new_sessions_and_fails_open_ones(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(4096)
    open_session = await start_upload(artifacts, version.name, "late.bin", data)
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ACTOR)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await start_upload(artifacts, version.name, "later.bin", data)
    assert (caught.value.code(), error_info(caught.value)[0]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERSION_SEALED",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, open_session.name, data)
    assert (caught.value.code(), error_info(caught.value)[0]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERSION_SEALED",
    )
    failed = await session_of(artifacts, open_session.name)
    assert (failed.state, failed.failure_reason) == (art.UPLOAD_STATE_FAILED, "VERSION_SEALED")
    assert await manifest(metadata, version.name) == {}


def refused_write(
    address: str, session: str, data: bytes, paused: art.UploadSession
) -> tuple[grpc.StatusCode, str]:
    """Sends the rest of `data` to a session that must refuse it; the code and reason it gave."""

    def messages() -> Iterator[art.WriteUploadRequest]:
        start = paused.committed_size
        yield art.WriteUploadRequest(upload_session=session, write_offset=start)
        for offset in range(start, len(data), MIB):
            yield art.WriteUploadRequest(write_offset=offset, data=data[offset : offset + MIB])
        yield art.WriteUploadRequest(write_offset=len(data), finish_write=True)

    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        artifact_service_pb2_grpc.ArtifactServiceStub(channel).WriteUpload(messages(), metadata=tuple(ACTOR))
    error: Any = caught.value  # a grpc.Call as well: code() and trailing_metadata()
    return error.code(), error_info(error)[0]


async def test_expired_sessions_refuse_bytes_and_free_their_parts(
    metadata: MetadataStub, artifact_replicas: ReplicaFactory, bucket: tuple[Minio, str]
) -> None:
    replica = artifact_replicas(
        MODELREG_S3_PART_MIB="5", MODELREG_UPLOAD_TTL_SECONDS="2", MODELREG_UPLOAD_SWEEP_SECONDS="0.3"
    )
    client, bucket_name = bucket
    version = await new_version(metadata)
    data = os.urandom(12 * MIB)
    async with authenticated_channel(replica.address) as channel:
        short_lived = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        session = await start_upload(short_lived, version.name, "slow.bin", data)
        paused = await write_upload(short_lived, session.name, data, 0, end=11 * MIB, finish=False)
        assert paused.committed_size == 10 * MIB
        key = "blobs/" + session.name.removeprefix("uploads/")

        def pending_parts() -> list[str]:
            return [u.object_name for u in client._list_multipart_uploads(bucket_name, prefix=key).uploads]

        assert pending_parts() == [key]
        await asyncio.sleep(2.5)
        expired = await session_of(short_lived, session.name)
        assert expired.state == art.UPLOAD_STATE_EXPIRED
        # Through the blocking API: grpc.aio may report INTERNAL instead of the service's status
        # when the service ends a stream the client is still writing (grpc/grpc#36066).
        code, reason = await asyncio.to_thread(refused_write, replica.address, session.name, data, paused)
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UPLOAD_EXPIRED")
        for _ in range(50):
            if not pending_parts():
                break
            await asyncio.sleep(0.2)
        assert pending_parts() == [], "the sweeper did not abort the expired multipart upload"


async def test_a_part_counts_as_committed_once_object_storage_has_it(
    metadata: MetadataStub, artifacts: ArtifactStub, second_replica: ServiceProcess
) -> None:
    """Neither a later chunk nor the end of the stream is needed to record a stored part, so a
    cut loses only the parts in flight and the unfinished one."""
    version = await new_version(metadata)
    data = os.urandom(23 * MIB + 5)
    async with authenticated_channel(second_replica.address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        session = await start_upload(stub, version.name, "idle.bin", data)
        part = session.part_size_bytes
        sent = 22 * MIB
        call = stub.WriteUpload(metadata=ACTOR)  # type: ignore[call-arg]  # aio: write() API
        await call.write(art.WriteUploadRequest(upload_session=session.name, write_offset=0))
        for offset in range(0, sent, CHUNK):
            await call.write(art.WriteUploadRequest(write_offset=offset, data=data[offset : offset + CHUNK]))
        # The stream stays open and sends nothing more: every full part must still be recorded.
        full_parts = sent // part * part
        committed, deadline = 0, asyncio.get_running_loop().time() + 30
        while committed < full_parts and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            committed = (await session_of(stub, session.name)).committed_size
        assert committed == full_parts
        call.cancel()
        # The cut loses nothing that was committed; the resume sends only the rest.
        assert (await session_of(stub, session.name)).committed_size == full_parts
        done = await write_upload(stub, session.name, data, full_parts)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "idle.bin"))[1] == data


async def test_data_messages_keep_to_the_documented_bounds(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(6 * MIB + 7)
    session = await start_upload(artifacts, version.name, "bounds.bin", data)

    # 3 MiB: gRPC's own limit (4 MiB) would let it through; the protocol's (2 MiB) does not.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data, chunk=3 * MIB)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == ("CHUNK_TOO_LARGE", ["data"])
    assert len(caught.value.details() or "") < 300

    # One-byte messages: refused at the second, with the reason and the bound.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data, end=3, chunk=1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == ("CHUNK_TOO_SMALL", ["data"])
    assert "64 KiB" in (caught.value.details() or "")
    # 200,000 of them: the stream ends at the second, before they cost anything. The client may
    # still be sending when the refusal ends the stream; grpc's core then reports its failed send
    # as INTERNAL "Internal error from Core" instead of the service's status (grpc/grpc#36066),
    # which is the client library's race, not the service's answer (shown exactly just above).
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await write_upload(artifacts, session.name, data, end=200_000, chunk=1)
    if caught.value.code() == grpc.StatusCode.INTERNAL:
        assert caught.value.details() == "Internal error from Core"
    else:
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value) == ("CHUNK_TOO_SMALL", ["data"])
    still = await session_of(artifacts, session.name)
    assert (still.state, still.committed_size) == (art.UPLOAD_STATE_ACTIVE, 0)

    # Within the bounds (2 MiB and 64 KiB messages, a short last one) the same session takes the file.
    done = await write_upload(artifacts, session.name, data, end=4 * MIB, finish=False, chunk=2 * MIB)
    done = await write_upload(artifacts, session.name, data, done.committed_size, chunk=64 * 1024)
    assert done.state == art.UPLOAD_STATE_FINISHED
    assert (await download(artifacts, version.name, "bounds.bin"))[1] == data

    # The one-shot upload keeps the same bounds.
    small = await new_version(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.UploadFile(upload_messages(spec_for(small.name, "tiny.bin", data), data, chunk=1000))
    assert error_info(caught.value) == ("CHUNK_TOO_SMALL", ["data"])
