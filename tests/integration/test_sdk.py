"""The Python SDK through its public API, against the real services (sync and async)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from modelreg import AsyncClient, Client, ClientSettings, Direction, Outcome, RetryPolicy
from modelreg import errors as sdk_errors
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import ARTIFACT_SERVICE, METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import model_pb2

from tests.integration.credentials import ready_credential_for
from tests.support import unique

pytestmark = pytest.mark.integration

ACTOR = "user:sdk-test@example.com"
MIB = 1024 * 1024


def write_model_dir(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    contents = {}
    for path, size in sizes.items():
        data = os.urandom(size)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        contents[path] = data
    return contents


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class RecordingProgress:
    """A real TransferProgress implementation that keeps what it was told."""

    def __init__(self) -> None:
        self.begun: list[tuple[Direction, int, int]] = []
        self.done: list[tuple[str, Outcome]] = []
        self.bytes = 0
        self.ended = 0

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        self.begun.append((direction, files, total_bytes))

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        self.done.append((path, outcome))

    def retrying(self, path: str, reason: str, delay: float) -> None:
        pass

    def end(self) -> None:
        self.ended += 1


@pytest.fixture
def client(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    with Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, ACTOR),
        cache_dir=tmp_path / "cache",
    ) as registry:
        yield registry


def test_push_and_pull_with_the_blocking_client(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "model"
    contents = write_model_dir(
        source, {"weights.bin": 3 * 1024 * 1024 + 7, "config.json": 120, "tokenizer/vocab.txt": 4000}
    )
    model = f"team-a/{unique()}"
    progress = RecordingProgress()
    pushed = client.push(
        model,
        source,
        description="a first version",
        params={"optimizer": {"name": "adam", "lr": 0.001}, "layers": [64, 32]},
        metrics={"auc": 0.97, "f1 score": 0.88},
        tags={"dataset": "q3"},
        lineage={"training_run_id": "run-42", "source_commit": "abc123"},
        signature={"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 16]}]},
        alias="staging",
        progress=progress,
    )
    version = pushed.version
    assert version.number == 1
    assert version.state == model_pb2.MODEL_VERSION_STATE_READY
    assert list(version.aliases) == ["staging"]
    assert version.create_actor == ACTOR
    assert {(f.path, f.size_bytes, f.sha256) for f in version.files} == {
        (path, len(data), hashlib.sha256(data).hexdigest()) for path, data in contents.items()
    }
    assert pushed.uploaded_bytes == sum(len(d) for d in contents.values())
    assert not pushed.resumed
    # Two phases: hashing every file, then uploading them.
    total = pushed.uploaded_bytes
    assert progress.begun == [(Direction.HASH, 3, total), (Direction.UPLOAD, 3, total)]
    assert progress.bytes == 2 * total
    assert sorted(outcome for _, outcome in progress.done) == [Outcome.HASHED] * 3 + [Outcome.UPLOADED] * 3
    assert progress.ended == 2

    by_alias = client.get_version(f"{model}@staging")
    assert by_alias == client.get_version(f"{model}/1")
    assert json_format.MessageToDict(by_alias.params)["optimizer"] == {"name": "adam", "lr": 0.001}
    assert dict(by_alias.metrics) == {"auc": 0.97, "f1 score": 0.88}
    assert by_alias.lineage.training_run_id == "run-42"
    assert by_alias.signature.inputs[0].shape == [-1, 16]
    assert [v.number for v in client.list_versions(model)] == [1]
    assert client.get_model(model).latest_version_number == 1

    first = client.pull(f"{model}@staging", tmp_path / "out1")
    assert read_tree(tmp_path / "out1") == contents
    assert first.received_bytes == first.downloaded_bytes == pushed.uploaded_bytes
    second = client.pull(f"{model}/1", tmp_path / "out2")
    assert read_tree(tmp_path / "out2") == contents
    assert (second.received_bytes, second.downloaded_bytes) == (0, 0)
    assert {f.outcome for f in second.files} == {Outcome.FROM_CACHE}


async def test_the_async_client_does_the_same(stack: LocalStack, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(1024 * 1024))
    namespace = unique("ns")
    async with AsyncClient(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, ACTOR),
        cache_dir=tmp_path / "cache",
    ) as registry:
        created = await registry.create_model(f"{namespace}/first", description="d", labels={"team": "x"})
        assert created.create_actor == ACTOR
        await registry.create_model(f"{namespace}/second")
        names = [m.name async for m in registry.list_models(namespace, page_size=1)]
        assert names == [f"namespaces/{namespace}/models/first", f"namespaces/{namespace}/models/second"]

        pushed = await registry.push(f"{namespace}/first", source, metrics={"acc": 0.5})
        assert [f.path for f in pushed.version.files] == ["model.onnx"]
        alias = await registry.set_alias(f"{namespace}/first", "production", pushed.version.number)
        assert alias.version_number == pushed.version.number
        pulled = await registry.pull(f"{namespace}/first@production", tmp_path / "out")
        assert (tmp_path / "out" / "model.onnx").read_bytes() == source.read_bytes()
        assert pulled.downloaded_bytes == source.stat().st_size


def test_errors_are_typed_with_code_reason_and_field(client: Client) -> None:
    model = f"team-a/{unique()}"
    with pytest.raises(sdk_errors.NotFound) as missing:
        client.get_model(model)
    assert missing.value.code is grpc.StatusCode.NOT_FOUND
    assert missing.value.reason
    assert missing.value.request_id

    client.create_model(model)
    with pytest.raises(sdk_errors.AlreadyExists):
        client.create_model(model)

    with pytest.raises(sdk_errors.InvalidArgument) as invalid:
        client.create_version(model, metrics={"loss": float("nan")})
    assert "metrics" in invalid.value.field
    assert "loss" in invalid.value.field

    version, newer = client.create_version(model), client.create_version(model)
    client.seal_version(version.name)
    client.seal_version(newer.name)
    alias = client.set_alias(model, "prod", version.number)
    client.set_alias(model, "prod", newer.number, etag=alias.etag)  # moved: the etag changed
    with pytest.raises(sdk_errors.Aborted):
        client.set_alias(model, "prod", version.number, etag=alias.etag)

    # A server that accepts the connection and never answers: only the deadline ends the call.
    # (A deadline too short to be met by the real service is not reliable: a local reply can
    # arrive before gRPC looks at its timer.)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with (
            Client(metadata_addr=address, timeout=0.3) as hurried,
            pytest.raises(sdk_errors.DeadlineExceeded),
        ):
            hurried.get_model(model)


def test_pull_refuses_a_pending_version_unless_asked(client: Client, tmp_path: Path) -> None:
    model = f"team-a/{unique()}"
    client.create_model(model)
    version = client.create_version(model)
    with pytest.raises(sdk_errors.FailedPrecondition) as refused:
        client.pull(version.name, tmp_path / "out")
    assert refused.value.reason == "VERSION_NOT_SEALED"
    assert client.pull(version.name, tmp_path / "out", allow_pending=True).files == []


def test_without_cache_nothing_is_kept_outside_the_destination(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "src"
    contents = write_model_dir(source, {"a.bin": 2000, "b/a-copy.bin": 0})
    contents["b/a-copy.bin"] = contents["a.bin"]
    (source / "b" / "a-copy.bin").write_bytes(contents["a.bin"])  # duplicate content, one download
    pushed = client.push(f"team-a/{unique()}", source)
    pulled = client.pull(pushed.version.name, tmp_path / "dest", use_cache=False)
    assert read_tree(tmp_path / "dest") == contents
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["a.bin", "b"]  # no staging left
    assert pulled.received_bytes == 2000
    assert not (tmp_path / "cache" / "blobs").exists()
    assert not (tmp_path / "cache" / "partial").exists()
    (tmp_path / "dest" / "a.bin").write_bytes(b"edited")  # files are independent and writable
    assert (tmp_path / "dest" / "b" / "a-copy.bin").read_bytes() == contents["a.bin"]


def test_a_damaged_cache_entry_is_detected_and_fetched_again(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(500_000))
    pushed = client.push(f"team-a/{unique()}", source)
    client.pull(pushed.version.name, tmp_path / "out1")
    blob = client.settings.cache_dir / "blobs" / "sha256" / pushed.version.files[0].sha256
    blob.chmod(0o644)
    blob.write_bytes(b"x" * 500_000)  # same size, wrong bytes
    again = client.pull(pushed.version.name, tmp_path / "out2")
    assert [f.outcome for f in again.files] == [Outcome.DOWNLOADED]
    assert (tmp_path / "out2" / "weights.bin").read_bytes() == source.read_bytes()


def test_an_interrupted_download_continues_from_its_partial_file(client: Client, tmp_path: Path) -> None:
    data = os.urandom(4 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    pushed = client.push(f"team-a/{unique()}", source)
    digest = pushed.version.files[0].sha256
    partial = client.settings.cache_dir / "partial" / digest
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[: 3 * 1024 * 1024])  # what a killed pull leaves behind
    pulled = client.pull(pushed.version.name, tmp_path / "out")
    assert pulled.received_bytes == 1024 * 1024
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert not partial.exists()


def test_calls_retry_while_the_service_is_unavailable(stack: LocalStack, tmp_path: Path) -> None:
    """A client started before its server (a pod racing its dependencies) gets an answer."""
    assert stack.metadata is not None
    address = f"127.0.0.1:{free_port()}"
    late = ServiceProcess(
        "metadata-late",
        module="modelreg_metadata",
        service=METADATA_SERVICE,
        address=address,
        env={**stack.metadata.env, "MODELREG_METADATA_ADDR": address},
        log_dir=tmp_path,
    )
    settings = ClientSettings(
        addresses=ServiceAddresses(address, stack.addresses.artifacts),
        token=ready_credential_for(stack.addresses.artifacts, ACTOR),
        cache_dir=tmp_path / "cache",
        retry=RetryPolicy(attempts=60, initial_backoff=0.1, max_backoff=0.5),
    )
    model = f"team-a/{unique()}"
    result: list[model_pb2.Model] = []
    failure: list[BaseException] = []

    def create() -> None:
        try:
            with Client(settings=settings) as registry:
                result.append(registry.create_model(model))
        except BaseException as exc:
            failure.append(exc)

    caller = threading.Thread(target=create)
    caller.start()
    try:
        late.start()
        late.wait_healthy()
        caller.join(timeout=60)
    finally:
        late.stop()
    assert not failure
    assert result[0].name == f"namespaces/{model.replace('/', '/models/')}"


class KillingProgress(RecordingProgress):
    """Kills (SIGKILL) and restarts the artifact service once `after` bytes were sent."""

    def __init__(self, service: ServiceProcess, after: int) -> None:
        super().__init__()
        self.service = service
        self.after = after
        self.restarter: threading.Thread | None = None
        self.retries: list[str] = []

    def advance(self, nbytes: int) -> None:
        super().advance(nbytes)
        if self.restarter is None and self.bytes >= self.after:
            self.restarter = threading.Thread(target=self._restart)
            self.restarter.start()

    def _restart(self) -> None:
        assert self.service.pid is not None
        os.kill(self.service.pid, signal.SIGKILL)
        self.service.wait_exited(timeout=30)
        self.service.start()
        self.service.wait_healthy()

    def retrying(self, path: str, reason: str, delay: float) -> None:
        self.retries.append(reason)


def test_a_push_continues_from_the_committed_bytes_when_the_service_dies_mid_file(
    stack: LocalStack, tmp_path: Path
) -> None:
    assert stack.artifacts is not None
    address = f"127.0.0.1:{free_port()}"
    service = ServiceProcess(
        "artifacts-killed",
        module="modelreg_artifacts",
        service=ARTIFACT_SERVICE,
        address=address,
        # 5 MiB parts: the service commits often, so little is sent twice.
        env={**stack.artifacts.env, "MODELREG_ARTIFACT_ADDR": address, "MODELREG_S3_PART_MIB": "5"},
        log_dir=tmp_path,
    )
    service.start()
    service.wait_healthy()
    size = 100 * MIB
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(size))
    settings = ClientSettings(
        addresses=ServiceAddresses(stack.addresses.metadata, address),
        token=ready_credential_for(stack.addresses.artifacts, ACTOR),
        cache_dir=tmp_path / "cache",
        retry=RetryPolicy(attempts=60, initial_backoff=0.1, max_backoff=0.5),
    )
    # Hashing reports the file once, then uploading: kill after 60 MiB of the upload.
    progress = KillingProgress(service, after=size + 60 * MIB)
    try:
        with Client(settings=settings) as registry:
            pushed = registry.push(f"team-a/{unique()}", source, progress=progress)
            pulled = registry.pull(pushed.version.name, tmp_path / "out")
    finally:
        if progress.restarter is not None:
            progress.restarter.join(timeout=60)
        service.stop()
    assert progress.retries, "the service was not killed during the upload"
    [weights] = pushed.files
    assert weights.outcome is Outcome.UPLOADED
    # Only what the dead process had not committed was sent again (its parts in flight and what
    # the transport buffered, about 20 MiB here), not the 60 MiB that starting over would repeat.
    assert size <= weights.transferred_bytes < size + 40 * MIB
    assert (tmp_path / "out" / "weights.bin").read_bytes() == source.read_bytes()
    assert pulled.files[0].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
