"""The init container and the training Job of deploy/k8s/examples/jobs, run on the local stack.

Each test starts the container's own command, read from the example's YAML (tests/deploy/
job_pods.py), as the workload's service account: the projected token is a file holding an API
token of `serviceaccount:ml/<name>` with the role docs/jobs.md says to grant (viewer to pull,
editor to push). The SDK reads it through MODELREG_TOKEN_FILE, exactly as in the pod.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from modelreg import Client
from modelreg.errors import NotFound
from modelreg_local.stack import LocalStack
from modelregistry.v1 import model_pb2

from tests.command_line import MIB, write_files
from tests.deploy.job_pods import NAMESPACE, Pod, admin_client, base_env, cluster, pod_credential
from tests.support import unique

pytestmark = pytest.mark.integration

EXIT_USAGE = 2
EXIT_UNAUTHENTICATED = 8
JOB_NAME = "metadata.labels['batch.kubernetes.io/job-name']"
JOB_UID = "metadata.labels['batch.kubernetes.io/controller-uid']"


@pytest.fixture
def registry(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    """The test's own view of the registry, as a global admin (not what the jobs act as)."""
    with admin_client(stack, tmp_path / "admin-cache") as client:
        yield client


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(argv, env)
    assert done.returncode == 0, f"{argv[1:]} failed ({done.returncode}): {done.stderr}"
    return done


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# The init container


def test_the_init_container_pulls_production_verified_once_and_writes_a_marker(
    stack: LocalStack, registry: Client, tmp_path: Path
) -> None:
    model = f"{NAMESPACE}/{unique('detector')}"
    first, second = tmp_path / "v1", tmp_path / "v2"
    write_files(first, {"weights.bin": 3 * MIB, "config.json": 200, "tokenizer/vocab.txt": 300})
    write_files(second, {"weights.bin": 2 * MIB, "config.json": 200})
    registry.push(model, first, alias="production")
    registry.push(model, second)
    token = pod_credential(stack, "fraud-model-server", "viewer")
    pod = Pod("Deployment", "fraud-model-server", tmp_path / "pod", model=model, token=token)
    env = pod.env("pull-model", base_env(tmp_path), cluster(stack), {})
    argv = pod.argv("pull-model", env)
    assert env["MODELREG_TOKEN_FILE"].startswith(str(pod.volume("modelreg-token")))
    models = pod.volume("models")

    done = ok(argv, env)
    assert files_of(first) == {k: v for k, v in files_of(models).items() if not k.startswith(".modelreg")}
    # Not a terminal: plain log lines, no bar redrawn with carriage returns or escapes.
    assert done.stderr.strip()
    assert "\r" not in done.stderr
    assert "\x1b" not in done.stderr
    version = registry.get_version(f"{model}@production")
    marker = json.loads((models / ".modelreg-version.json").read_text())
    assert marker["model_version"] == version.name
    assert marker["number"] == 1
    assert marker["manifest_digest"] == version.manifest_digest
    assert marker["ref"] == f"{model}@production"
    inodes = {p: p.stat().st_ino for p in models.rglob("*") if p.is_file()}

    # The pod restarts (the same emptyDir): every file is kept as it is, nothing is downloaded.
    again = ok(argv, env)
    assert "0 B received" in again.stdout
    assert "already in place" in again.stdout
    assert {p: p.stat().st_ino for p in models.rglob("*") if p.is_file()} == inodes

    # The token file is read at every start: a rotated (here: broken) token is used as it is.
    token_file = Path(env["MODELREG_TOKEN_FILE"])
    token_file.write_text("mrt_notatoken_secret\n")
    refused = run(argv, env)
    assert refused.returncode == EXIT_UNAUTHENTICATED, refused.stderr
    assert "MODELREG_TOKEN_FILE" in refused.stderr
    token_file.write_text(token + "\n")

    # Production moves; the pod starts again on the same volume: version 2's files replace
    # version 1's at the same paths (after verification), the marker follows.
    registry.set_alias(model, "production", 2)
    moved = ok(argv, env)
    assert "fraud/" in moved.stdout
    pulled = files_of(models)
    assert pulled["weights.bin"] == (second / "weights.bin").read_bytes()
    assert pulled["config.json"] == (second / "config.json").read_bytes()
    marker = json.loads((models / ".modelreg-version.json").read_text())
    assert marker["number"] == 2
    assert marker["manifest_digest"] == registry.get_version(f"{model}/2").manifest_digest


# The training Job

DATASETS = [
    {"uri": "s3://datasets/fraud/train-2026-11.parquet", "digest": "sha256:" + "a" * 64, "role": "train"},
    {"uri": "s3://datasets/fraud/eval-2026-11.parquet", "digest": "sha256:" + "b" * 64, "role": "eval"},
]
SOURCE_REPOSITORY = "https://git.example.com/fraud/detector"


def train(output: Path, weights: bytes, *, auc: float) -> None:
    """What the example's `train` init container leaves under /output."""
    (output / "model").mkdir(parents=True)
    (output / "model" / "weights.bin").write_bytes(weights)
    (output / "model" / "config.json").write_text(json.dumps({"hidden": [64, 32]}))
    (output / "params.json").write_text(json.dumps({"learning_rate": 0.01, "epochs": 12, "layers": [64, 32]}))
    (output / "metrics.json").write_text(json.dumps({"auc": auc, "loss": 0.21}))
    lineage = {"source_repository": SOURCE_REPOSITORY, "datasets": DATASETS}
    (output / "lineage.json").write_text(json.dumps(lineage))


def version_exists(registry: Client, version: str) -> bool:
    try:
        registry.get_version(version)
    except NotFound:
        return False
    return True


def pod_arg(pod: Pod, container: str, option: str) -> str:
    args = pod.container(container)["args"]
    return str(args[args.index(option) + 1])


def test_the_training_job_pushes_with_lineage_moves_staging_and_a_retry_adds_no_version(
    stack: LocalStack, registry: Client, tmp_path: Path
) -> None:
    model = f"{NAMESPACE}/{unique('detector')}"
    token = pod_credential(stack, "trainer", "editor")
    fields = {JOB_NAME: "train-fraud-detector", JOB_UID: str(uuid.uuid4())}

    def attempt(name: str) -> tuple[Pod, list[str], dict[str, str]]:
        """A pod of the Job: its own volumes (a retry's new pod starts with empty ones)."""
        pod = Pod("Job", "train-fraud-detector", tmp_path / name, model=model, token=token)
        env = pod.env("push", base_env(tmp_path / name), cluster(stack), fields)
        return pod, pod.argv("push", env), env

    first, argv, env = attempt("pod-1")
    assert pod_arg(first, "train", "--output") == "/output"  # where the push reads
    weights = os.urandom(48 * MIB)
    train(first.volume("output"), weights, auc=0.93)
    # The first pod dies in the middle of its push (its node is lost): the version exists, not
    # all of its files.
    push = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not version_exists(registry, f"{model}/1"):
        assert push.poll() is None, push.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    push.send_signal(signal.SIGKILL)
    push.communicate()
    assert push.returncode == -signal.SIGKILL
    assert registry.get_version(f"{model}/1").state == model_pb2.MODEL_VERSION_STATE_PENDING

    # The Job starts a new pod: it trains again (to the same result here) and pushes with the
    # same request id (the Job's uid) from an empty cache. It finishes the one version.
    second, argv, env = attempt("pod-2")
    train(second.volume("output"), weights, auc=0.93)
    done = ok(argv, env)
    assert done.stdout.strip() == f"{model}/1"
    assert [v.number for v in registry.list_versions(model)] == [1]
    version = registry.get_version(f"{model}@staging")
    assert version.number == 1
    assert version.state == model_pb2.MODEL_VERSION_STATE_READY
    assert version.create_actor == "serviceaccount:ml/trainer"
    assert dict(version.metrics) == {"auc": 0.93, "loss": 0.21}
    assert json_format.MessageToDict(version.params) == {
        "learning_rate": 0.01,
        "epochs": 12,
        "layers": [64, 32],
    }
    assert version.lineage.source_commit == env["GIT_COMMIT"]
    assert version.lineage.training_run_id == "train-fraud-detector"
    assert version.lineage.source_repository == SOURCE_REPOSITORY
    assert [(d.uri, d.digest, d.role) for d in version.lineage.datasets] == [
        (d["uri"], d["digest"], d["role"]) for d in DATASETS
    ]
    assert {f.path: f.size_bytes for f in version.files} == {
        "weights.bin": len(weights),
        "config.json": (second.volume("output") / "model" / "config.json").stat().st_size,
    }

    # The container is restarted after it had finished (OnFailure, a later crash): the same
    # version again, nothing added.
    again = ok(argv, env)
    assert again.stdout.strip() == f"{model}/1"
    assert [v.number for v in registry.list_versions(model)] == [1]

    # A pod of the same Job that trained to a different result is refused, not registered.
    third, argv, env = attempt("pod-3")
    train(third.volume("output"), weights, auc=0.91)
    refused = run(argv, env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "REQUEST_ID_REUSED" in refused.stderr
    assert [v.number for v in registry.list_versions(model)] == [1]
    assert registry.get_version(f"{model}@staging").number == 1
