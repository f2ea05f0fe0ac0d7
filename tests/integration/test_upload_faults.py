"""Uploads through the SDK and the CLI when the network cuts streams, and when many pushes of
the same content run at once (issue 16, "Uploads")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from modelreg import AsyncClient, ClientSettings, Direction, Outcome, RetryPolicy
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack, ServiceProcess
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, model_pb2

from tests.integration.credentials import ready_credential_for
from tests.integration.cutting_proxy import CuttingProxy
from tests.support import ACTOR as ALICE_METADATA
from tests.support import authenticated_channel, new_version, spec_for, unique

if TYPE_CHECKING:
    from tests.command_line import Cli
    from tests.conftest import ReplicaFactory
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ACTOR = "user:upload-faults@example.com"
MIB = 1024 * 1024
# The replica of `second_replica` cuts files in 5 MiB parts and keeps 2 in flight (the default).
PART = 5 * MIB
PARTS_IN_FLIGHT = 2
# Bytes counted as sent that a cut can strand outside the service: the transport's windows
# and buffers (HTTP/2 flow control, the sockets on both sides of the proxy).
TRANSPORT_SLACK = 8 * MIB
# What one cut may cost at most: the parts being stored, the unfinished part, the transport.
RESENT_PER_CUT = (PARTS_IN_FLIGHT + 1) * PART + TRANSPORT_SLACK


class AdvanceLog:
    """A TransferProgress that keeps every `advance` it is told, per direction."""

    def __init__(self) -> None:
        self.direction = Direction.HASH
        self.advances: dict[Direction, list[int]] = {}
        self.retries: list[str] = []

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        self.direction = direction

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.advances.setdefault(self.direction, []).append(nbytes)

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        pass

    def retrying(self, path: str, reason: str, delay: float) -> None:
        self.retries.append(reason)

    def end(self) -> None:
        pass


def settings_for(metadata: str, artifacts: str, cache: Path, token: str) -> ClientSettings:
    return ClientSettings(
        addresses=ServiceAddresses(metadata, artifacts),
        token=token,
        cache_dir=cache,
        retry=RetryPolicy(attempts=10, initial_backoff=0.1, max_backoff=0.5),
    )


async def test_a_push_whose_streams_are_cut_resends_only_what_was_in_flight_and_reports_it(
    stack: LocalStack, second_replica: ServiceProcess, tmp_path: Path
) -> None:
    size, cuts = 100 * MIB, 3
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(size))
    token = ready_credential_for(second_replica.address, ACTOR)
    progress = AdvanceLog()
    with CuttingProxy(second_replica.address, cut_every=30 * MIB, cuts=cuts) as proxy:
        settings = settings_for(stack.addresses.metadata, proxy.address, tmp_path / "cache", token)
        async with AsyncClient(settings=settings) as registry:
            pushed = await registry.push(f"team-a/{unique()}", source, progress=progress)
            pulled = await registry.pull(pushed.version.name, tmp_path / "out")
    assert proxy.cuts_done == cuts
    [weights] = pushed.files
    assert weights.resumed_streams == cuts  # each cut broke the stream once, and it went on
    assert weights.outcome is Outcome.UPLOADED  # no earlier push left a session to continue
    assert pushed.resumed  # ...but this push resumed its own broken streams
    assert weights.skipped_bytes == 0
    assert pushed.skipped_bytes == 0
    assert weights.transferred_bytes == pushed.uploaded_bytes >= size
    assert pushed.resent_bytes == weights.transferred_bytes - size
    # After each cut only what was not yet committed was sent again.
    assert pushed.resent_bytes <= cuts * RESENT_PER_CUT, pushed.resent_bytes
    # Progress never went backwards, and counted each byte of the file once.
    upload_advances = progress.advances[Direction.UPLOAD]
    assert min(upload_advances) >= 0
    assert sum(upload_advances) == size
    assert pulled.files[0].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (tmp_path / "out" / "weights.bin").read_bytes() == source.read_bytes()
    report = pushed.to_dict()
    assert report["resumed"] is True
    assert report["skipped_bytes"] == 0
    assert report["resent_bytes"] == pushed.resent_bytes
    assert report["files"][0]["resumed_streams"] == cuts


def test_the_cli_report_stays_true_across_cuts(
    cli: Cli, second_replica: ServiceProcess, tmp_path: Path
) -> None:
    size, cuts = 60 * MIB, 2
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.bin").write_bytes(os.urandom(size))
    ready_credential_for(second_replica.address, cli.principal)
    with CuttingProxy(second_replica.address, cut_every=20 * MIB, cuts=cuts) as proxy:
        through = type(cli)({**cli.env, "MODELREG_ARTIFACT_ADDR": proxy.address}, cli.cwd)
        done = through.run("push", f"team-a/{unique()}", str(source), "--output", "json")
    assert done.returncode == 0, done.stderr
    assert proxy.cuts_done == cuts
    report = json.loads(done.stdout)
    [weights] = report["files"]
    assert weights["resumed_streams"] == cuts
    assert report["resumed"] is True
    assert report["skipped_bytes"] == 0
    assert report["uploaded_bytes"] == weights["transferred_bytes"] >= size
    assert report["resent_bytes"] == report["uploaded_bytes"] - size <= cuts * RESENT_PER_CUT
    assert report["version"]["state"] == "MODEL_VERSION_STATE_READY"
    # The log lines (stderr without a terminal) never show a negative size or rate.
    assert not re.search(r"-\d[\d.]* ?[KMG]?i?B", done.stderr), done.stderr


async def test_concurrent_pushes_of_the_same_file_send_its_bytes_about_once(
    stack: LocalStack, second_replica: ServiceProcess, tmp_path: Path
) -> None:
    pushes, size = 12, 40 * MIB
    source = tmp_path / "shared.bin"
    source.write_bytes(os.urandom(size))
    namespace = unique("ns")
    # Two replicas share the work: the coordination goes through the session store.
    replicas = (stack.addresses.artifacts, second_replica.address)
    token = ready_credential_for(stack.addresses.artifacts, ACTOR)
    ready_credential_for(second_replica.address, ACTOR)
    clients = [
        AsyncClient(settings=settings_for(stack.addresses.metadata, address, tmp_path / f"cache{i}", token))
        for i, address in enumerate(replicas)
    ]
    try:
        results = await asyncio.gather(
            *(clients[i % 2].push(f"{namespace}/model-{i}", source) for i in range(pushes))
        )
    finally:
        for registry in clients:
            await registry.close()
    sent = sum(r.uploaded_bytes for r in results)
    outcomes = sorted(str(r.files[0].outcome) for r in results)
    # About once: one push sends the file; the others wait for its blob and reuse it.
    assert sent < 2 * size, (sent, outcomes)
    assert outcomes.count(str(Outcome.DEDUPLICATED)) >= pushes - 1, outcomes
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    for result in results:
        assert result.version.state == model_pb2.MODEL_VERSION_STATE_READY
        assert [(f.path, f.size_bytes, f.sha256) for f in result.version.files] == [
            ("shared.bin", size, digest)
        ]
        assert result.skipped_bytes + result.uploaded_bytes - result.resent_bytes == size


async def test_a_stalled_upload_of_the_same_content_holds_nobody_back(
    stack: LocalStack, metadata: MetadataStub, artifact_replicas: ReplicaFactory, tmp_path: Path
) -> None:
    replica = artifact_replicas(MODELREG_S3_PART_MIB="5", MODELREG_UPLOAD_STALL_SECONDS="2")
    size = 12 * MIB
    data = os.urandom(size)
    source = tmp_path / "stalled.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    other = await new_version(metadata)
    async with authenticated_channel(replica.address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        # Another client starts an upload of the same content, then sends nothing.
        stalled = await stub.StartUpload(
            art.StartUploadRequest(spec=spec_for(other.name, "stalled.bin", data)), metadata=ALICE_METADATA
        )
        busy = await stub.FindMissingBlobs(
            art.FindMissingBlobsRequest(sha256s=[digest], model_version=other.name), metadata=ALICE_METADATA
        )
        assert list(busy.missing_sha256s) == [digest]
        assert list(busy.uploading_sha256s) == [digest]  # it is being uploaded right now

        token = ready_credential_for(replica.address, ACTOR)
        settings = settings_for(stack.addresses.metadata, replica.address, tmp_path / "cache", token)
        async with AsyncClient(settings=settings) as registry:
            pushed = await asyncio.wait_for(registry.push(f"team-a/{unique()}", source), timeout=120)
        # It waited for the other upload until that one counted as stalled, then sent the bytes.
        [stored] = pushed.files
        assert stored.outcome is Outcome.UPLOADED
        assert stored.transferred_bytes == size
        assert pushed.version.state == model_pb2.MODEL_VERSION_STATE_READY
        idle = await stub.FindMissingBlobs(
            art.FindMissingBlobsRequest(sha256s=[digest], model_version=other.name), metadata=ALICE_METADATA
        )
        assert list(idle.missing_sha256s) == []
        assert list(idle.uploading_sha256s) == []
        await stub.CancelUploadSession(
            art.CancelUploadSessionRequest(name=stalled.name), metadata=ALICE_METADATA
        )
