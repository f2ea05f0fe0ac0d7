"""The real `modelreg` executable (the console script in .venv/bin) against the running stack."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from minio import Minio
from modelreg_local.stack import LocalStack
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc

from tests.command_line import MIB, Cli, write_files
from tests.support import credential_for, unique

pytestmark = pytest.mark.integration


def same_tree(left: Path, right: Path) -> bool:
    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}

    ours, theirs = files(left), files(right)
    if ours.keys() != theirs.keys():
        return False
    return all(ours[k].read_bytes() == theirs[k].read_bytes() for k in ours)


def downloads_logged(stack: LocalStack, actor: str) -> int:
    """DownloadFile calls that the artifact service itself logged for `actor`."""
    assert stack.artifacts is not None
    count = 0
    for line in stack.artifacts.log_path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("method", "").endswith("/DownloadFile") and record.get("actor") == actor:
                count += 1
    return count


def test_push_a_directory_pull_it_by_alias_byte_for_byte_then_again_from_the_cache(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    write_files(
        source,
        {
            "weights/model.safetensors": 100 * MIB,
            "config.json": 512,
            "tokenizer/vocab.txt": 64_000,
            "README.md": 10,
        },
    )
    model = f"team-a/{unique('cli')}"
    pushed = cli.ok(
        "push", model, str(source),
        "--param", "lr=0.001", "--param", "optimizer=adam", "--param", "layers=[64, 32]",
        "--metric", "accuracy=0.93", "--metric", "f1=0.9",
        "--tag", "dataset=q3",
        "--alias", "production",
        "--git-commit", "0a1b2c3", "--run-id", "run-7",
    )  # fmt: skip
    assert pushed.stdout == f"{model}/1\n"  # only the version on stdout, logs on stderr
    assert "sealed" in pushed.stderr

    shown = cli.json("versions", "show", f"{model}@production")
    assert shown["state"] == "MODEL_VERSION_STATE_READY"
    assert shown["params"] == {"lr": 0.001, "optimizer": "adam", "layers": [64, 32]}
    assert shown["metrics"] == {"accuracy": 0.93, "f1": 0.9}
    assert shown["tags"] == {"dataset": "q3"}
    assert shown["lineage"] == {"source_commit": "0a1b2c3", "training_run_id": "run-7"}
    assert shown["aliases"] == ["production"]
    assert len(shown["files"]) == 4

    actor = cli.principal
    first = cli.json("pull", f"{model}@production", str(tmp_path / "first"))
    assert same_tree(source, tmp_path / "first")
    assert first["received_bytes"] == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert downloads_logged(stack, actor) == 4

    second = cli.json("pull", f"{model}@production", str(tmp_path / "second"))
    assert same_tree(source, tmp_path / "second")
    assert second["received_bytes"] == 0
    assert {f["outcome"] for f in second["files"]} == {"from-cache"}
    assert downloads_logged(stack, actor) == 4  # the service sent nothing the second time


def test_an_interrupted_push_resumes_instead_of_restarting(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "model"
    write_files(source, {"a-config.json": 1000, "b-tokenizer.bin": 2 * MIB, "c-weights.bin": 100 * MIB})
    model = f"team-a/{unique('resume')}"
    # One file at a time, in path order: kill the push while the big last file is being sent.
    with cli.popen("push", model, str(source), "--parallel", "1", "--alias", "candidate") as push:
        assert push.stderr is not None
        for line in push.stderr:
            if "[2/3] b-tokenizer.bin" in line:
                push.send_signal(signal.SIGKILL)
                break
        push.wait(timeout=60)
    assert push.returncode == -signal.SIGKILL

    interrupted = cli.json("versions", "show", f"{model}/1")
    assert interrupted["state"] == "MODEL_VERSION_STATE_PENDING"
    assert sorted(f["path"] for f in interrupted["files"]) == ["a-config.json", "b-tokenizer.bin"]

    resumed = cli.json("push", model, str(source), "--parallel", "1", "--alias", "candidate")
    assert resumed["resumed"] is True
    assert resumed["version"]["name"].endswith(f"/models/{model.split('/')[1]}/versions/1")
    outcomes = {f["path"]: f["outcome"] for f in resumed["files"]}
    assert outcomes.pop("c-weights.bin") in ("uploaded", "resumed")  # resumed if a part was committed
    assert outcomes == {"a-config.json": "already-present", "b-tokenizer.bin": "already-present"}
    assert resumed["version"]["state"] == "MODEL_VERSION_STATE_READY"
    assert cli.json("models", "show", model)["latest_version_number"] == "1"  # no stray version 2


def upload_session(cli: Cli, name: str) -> art.UploadSession:
    """What the artifact service itself says about an upload session (asked as `cli` acts)."""
    with grpc.insecure_channel(cli.env["MODELREG_ARTIFACT_ADDR"]) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        credential = (("authorization", f"Bearer {cli.env['MODELREG_TOKEN']}"),)
        return stub.GetUploadSession(art.GetUploadSessionRequest(name=name), metadata=credential, timeout=10)


def journaled_session(cache: Path) -> str:
    """The upload session a running push wrote to its journal, once it has."""
    records = list((cache / "uploads").glob("*.json"))
    return str(json.loads(records[0].read_text())["session"]) if records else ""


def test_a_killed_push_resumes_mid_file_from_the_bytes_the_service_committed(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    source = tmp_path / "weights.bin"
    write_files(tmp_path, {"weights.bin": 100 * MIB})
    size = source.stat().st_size
    model = f"team-a/{unique('bytes')}"
    cache = Path(cli.env["MODELREG_CACHE_DIR"])

    with cli.popen("push", model, str(source), "--alias", "candidate") as push:
        deadline = time.monotonic() + 120
        session, committed = "", 0
        # Kill it once the service has committed at least one part, well before the end.
        while time.monotonic() < deadline and push.poll() is None:
            session = session or journaled_session(cache)
            if session:
                committed = upload_session(cli, session).committed_size
                if committed > 0:
                    push.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.01)
        push.wait(timeout=60)
    assert push.returncode == -signal.SIGKILL, "the push ended before it could be killed mid-file"
    time.sleep(1)  # let the service put away the parts it was receiving
    before = upload_session(cli, session)
    assert before.state == art.UPLOAD_STATE_ACTIVE
    assert 0 < before.committed_size < size

    resumed = cli.json("push", model, str(source), "--alias", "candidate")
    [weights] = resumed["files"]
    assert weights["outcome"] == "resumed"
    assert weights["upload_session"] == session  # the same session, continued
    assert weights["transferred_bytes"] == size - before.committed_size
    assert resumed["uploaded_bytes"] < size
    after = upload_session(cli, session)
    assert (after.state, after.committed_size) == (art.UPLOAD_STATE_FINISHED, size)
    assert resumed["version"]["state"] == "MODEL_VERSION_STATE_READY"
    assert list((cache / "uploads").glob("*.json")) == []  # nothing left to resume

    cli.ok("pull", f"{model}@candidate", str(tmp_path / "out"))
    assert (tmp_path / "out" / "weights.bin").read_bytes() == source.read_bytes()


def uploads_logged(stack: LocalStack, actor: str) -> int:
    """Calls that send file bytes (UploadFile, WriteUpload) the artifact service logged for `actor`."""
    assert stack.artifacts is not None
    count = 0
    for line in stack.artifacts.log_path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            method = record.get("method", "")
            if method.endswith(("/UploadFile", "/WriteUpload")) and record.get("actor") == actor:
                count += 1
    return count


def test_pushing_content_the_registry_has_sends_no_bytes(cli: Cli, stack: LocalStack, tmp_path: Path) -> None:
    source = tmp_path / "model"
    write_files(source, {"weights.bin": 12 * MIB, "config.json": 300, "vocab.txt": 2 * MIB})
    cli.ok("push", f"team-a/{unique('first')}", str(source))

    # Another model, another actor, the same bytes: recorded from the blobs already stored.
    again = cli.as_principal(unique("second-actor"))
    model = f"team-b/{unique('copy')}"
    pushed = again.json("push", model, str(source))
    assert pushed["uploaded_bytes"] == 0
    assert {f["outcome"] for f in pushed["files"]} == {"deduplicated"}
    assert [f["transferred_bytes"] for f in pushed["files"]] == [0, 0, 0]
    assert uploads_logged(stack, again.principal) == 0  # the service received no bytes
    assert pushed["version"]["state"] == "MODEL_VERSION_STATE_READY"
    assert sorted(f["path"] for f in pushed["version"]["files"]) == [
        "config.json",
        "vocab.txt",
        "weights.bin",
    ]

    again.ok("pull", f"{model}/1", str(tmp_path / "out"))
    assert same_tree(source, tmp_path / "out")


def test_verify_checks_the_stored_bytes(cli: Cli, bucket: tuple[Minio, str], tmp_path: Path) -> None:
    source = tmp_path / "model"
    write_files(source, {"weights.bin": 6 * MIB, "config.json": 200})
    model = f"team-a/{unique('verify')}"
    cli.ok("push", model, str(source), "--alias", "production")

    intact = cli.ok("verify", f"{model}@production")
    assert intact.stdout == (
        f"{model}/1: 2 files (6.0 MiB) re-read from storage; every file matches its SHA-256\n"
    )
    report = cli.json("verify", f"{model}/1")
    assert (report["checked_files"], report.get("problems", [])) == ("2", [])

    damage(bucket, (source / "weights.bin").read_bytes())
    damaged = cli.run("verify", f"{model}/1")
    assert damaged.returncode == 5
    assert damaged.stderr.splitlines() == [
        f"modelreg: error: {model}/1: 1 of 2 files do not match the manifest [DIGEST_MISMATCH]"
    ]
    assert "weights.bin  DIGEST_MISMATCH" in damaged.stdout
    assert "config.json" not in damaged.stdout
    as_json = cli.run("verify", f"{model}/1", "--output", "json")
    assert as_json.returncode == 5
    problems = json.loads(as_json.stdout)["problems"]
    assert [(p["path"], p["problem"]) for p in problems] == [("weights.bin", "BLOB_PROBLEM_DIGEST_MISMATCH")]


def test_pull_as_a_kubernetes_init_container(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    write_files(tmp_path, {"model.bin": 3 * MIB})
    model = f"team-a/{unique('pod')}"
    cli.ok("push", model, str(source), "--alias", "production")
    # No TTY, no cache volume: plain log lines, nothing kept outside the destination.
    pulled = cli.ok("pull", f"{model}@production", str(tmp_path / "models"), "--no-cache")
    assert (tmp_path / "models" / "model.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.bin"]
    assert "\r" not in pulled.stderr
    assert "\x1b" not in pulled.stderr
    lines = pulled.stderr.splitlines()
    assert lines[0] == "modelreg: downloading 1 file (3.0 MiB)"
    assert lines[1] == "modelreg: [1/1] model.bin (3.0 MiB): downloaded and verified"
    assert pulled.stdout.startswith(f"{model}/1 -> ")


def object_holding(bucket: tuple[Minio, str], data: bytes) -> str:
    """The key of the stored object that holds exactly `data` (random content: one object)."""
    client, name = bucket
    digest = hashlib.sha256(data).hexdigest()
    for item in client.list_objects(name, prefix="blobs/", recursive=True):
        key: str | None = item.object_name
        if key and item.size == len(data):
            response = client.get_object(name, key)
            try:
                if hashlib.sha256(response.read()).hexdigest() == digest:
                    return key
            finally:
                response.close()
                response.release_conn()
    raise AssertionError(f"no stored object holds sha256 {digest}")


def damage(bucket: tuple[Minio, str], data: bytes) -> None:
    """Bit rot in the object store, behind the service's back: flip one byte of the blob."""
    client, name = bucket
    rotten = bytearray(data)
    rotten[len(rotten) // 2] ^= 0xFF
    client.put_object(name, object_holding(bucket, data), io.BytesIO(bytes(rotten)), len(rotten))


def test_a_corrupted_blob_fails_the_pull_and_places_nothing(
    cli: Cli, bucket: tuple[Minio, str], tmp_path: Path
) -> None:
    source = tmp_path / "weights.bin"
    write_files(tmp_path, {"weights.bin": 2 * MIB})
    model = f"team-a/{unique('rot')}"
    cli.ok("push", model, str(source))
    damage(bucket, source.read_bytes())

    failed = cli.run("pull", f"{model}/1", str(tmp_path / "out"))
    assert failed.returncode == 5
    assert failed.stderr.splitlines()[-1].startswith("modelreg: error: ")
    assert "DATA_LOSS" in failed.stderr
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["models", "show", "team-a/no-such-model"], 3, "not found [NOT_FOUND"),
        (["models", "create", "Team A/x"], 2, "namespace id 'Team A' is invalid"),
        (["versions", "show", "team-a/x/v1"], 2, "is not a positive integer"),
        (["versions", "show", "team-a/x"], 2, "is not of the form"),
        (["pull", "team-a/no-such-model@production", "out"], 3, "not found"),
        (["push", "team-a/m", "does-not-exist"], 1, "cannot read does-not-exist"),
        (["push", "team-a/m", ".", "--metric", "auc=high"], 2, "metric 'auc': 'high' is not a number"),
        (["push", "team-a/m", ".", "--metric", "auc=nan"], 2, "is not a finite number"),
        (["push", "team-a/m", ".", "--param", "novalue"], 2, "'novalue' is not KEY=VALUE"),
        (["push", "team-a/m", ".", "--alias", "Bad Alias"], 2, "alias id 'Bad Alias' is invalid"),
        (["alias", "set", "team-a/no-such-model", "prod", "1"], 3, "not found"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["pull"], 2, "the following arguments are required"),
        (["--metadata-addr", "127.0.0.1:1", "--timeout", "1", "models", "show", "a/b"], 6, "[UNAVAILABLE]"),
    ],
)
def test_every_error_exits_non_zero_with_one_clear_line(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    if args[0] == "--metadata-addr":
        cli.env["MODELREG_CACHE_DIR"] = str(cli.cwd / "unused")
    done = cli.run(*args)
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("modelreg: error: ")
    assert message in lines[0]
    assert done.stdout == ""


def test_conflicts_exit_4_and_json_errors_are_structured(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('dup')}"
    cli.ok("models", "create", model)
    again = cli.run("models", "create", model, "--output", "json")
    assert again.returncode == 4
    error = json.loads(again.stderr.splitlines()[0])["error"]
    assert error["code"] == "ALREADY_EXISTS"
    assert error["request_id"]
    assert again.stderr.splitlines()[1].startswith("modelreg: error: ")

    (tmp_path / "f.bin").write_bytes(b"x")
    cli.ok("push", model, str(tmp_path / "f.bin"), "--alias", "prod")
    shown = cli.json("versions", "show", f"{model}@prod")
    moved = cli.json("alias", "set", model, "prod", "1")
    stale = cli.run("alias", "set", model, "prod", "1", "--etag", "not-the-current-etag")
    assert moved["version_number"] == "1"
    assert shown["aliases"] == ["prod"]
    assert stale.returncode == 4
    assert "ABORTED" in stale.stderr


def test_flags_override_the_environment(cli: Cli, stack: LocalStack, tmp_path: Path) -> None:
    env = {key: value for key, value in cli.env.items() if not key.startswith("MODELREG_")}
    bare = Cli(env, tmp_path)
    token_file = tmp_path / "flag.token"
    token_file.write_text(credential_for("flag-actor") + "\n")
    model = f"team-b/{unique('flags')}"
    created = bare.json(
        "models", "create", model, "--description", "from flags",
        "--metadata-addr", stack.addresses.metadata, "--artifact-addr", stack.addresses.artifacts,
        "--token-file", str(token_file),
    )  # fmt: skip
    assert created["create_actor"] == "user:flag-actor"
    listed = bare.json(
        "--metadata-addr",
        stack.addresses.metadata,
        "--token-file",
        str(token_file),
        "models",
        "list",
        "team-b",
    )
    assert model.split("/")[1] in [m["name"].rsplit("/", 1)[1] for m in listed]


COMMANDS: Sequence[Sequence[str]] = [
    [],
    ["models"],
    ["models", "create"],
    ["models", "list"],
    ["models", "show"],
    ["versions"],
    ["versions", "list"],
    ["versions", "show"],
    ["push"],
    ["pull"],
    ["verify"],
    ["compare"],
    ["alias"],
    ["alias", "set"],
    ["alias", "list"],
    ["alias", "delete"],
    ["alias", "protect"],
    ["alias", "unprotect"],
    ["review"],
    ["review", "submit"],
    ["review", "approve"],
    ["review", "reject"],
    ["events"],
    ["login"],
    ["logout"],
    ["whoami"],
    ["tokens"],
    ["tokens", "create"],
    ["tokens", "list"],
    ["tokens", "revoke"],
    ["namespaces", "grant"],
    ["namespaces", "revoke"],
    ["namespaces", "bindings"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "modelreg")
def test_every_command_has_help(cli: Cli, command: Sequence[str]) -> None:
    done = cli.ok(*command, "--help")
    assert done.stdout.startswith(f"usage: modelreg {' '.join(command)}".rstrip())
