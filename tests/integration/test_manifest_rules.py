"""A version's manifest stays writable as one directory tree, and a file is replaced only on
purpose: through the artifact service's uploads, the metadata service's ManifestService, the SDK
and the CLI (docs/artifact-protocol.md, "Paths and replacements")."""

from __future__ import annotations

import asyncio
import hashlib
import time
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from modelreg.credentials import TOKEN_ENV
from modelreg_local.stack import LocalStack
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, metadata_service_pb2_grpc, model_pb2
from modelregistry.v1 import manifest_service_pb2 as mf
from modelregistry.v1 import metadata_service_pb2 as md

from tests.command_line import Cli
from tests.support import (
    ACTOR,
    bearer,
    error_info,
    error_metadata,
    events_when,
    new_version,
    start_upload,
    unique,
    upload,
    upload_messages,
)

if TYPE_CHECKING:
    from tests.support import ArtifactStub, ManifestStub, MetadataStub

pytestmark = pytest.mark.integration

EXIT_CONFLICT = 4  # the CLI's exit code of ALREADY_EXISTS, ABORTED and FAILED_PRECONDITION


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def refused(call: object, code: grpc.StatusCode) -> tuple[str, dict[str, str], str]:
    """Awaits `call`, expecting `code`; returns the ErrorInfo reason, its metadata and the message."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    reason, _ = error_info(caught.value)
    return reason, error_metadata(caught.value), caught.value.details() or ""


async def manifest_of(metadata: MetadataStub, version: str) -> dict[str, str]:
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version))
    return {f.path: f.sha256 for f in fetched.files}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("dir/file", "dir"),  # a file where a directory must be
        ("ok.bin", "ok.bin/sub"),  # a directory where a file is
        ("a/b/c.txt", "a/b"),  # deeper
        ("ok.bin", "OK.BIN"),  # one file on macOS and Windows
        ("Straße/x", "STRASSE/x"),  # full case folding
        (unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")),
        ("Model/weights", "model"),  # a directory and a file, told apart only by case
    ],
)
async def test_a_path_that_cannot_live_beside_another_is_refused_when_uploaded(
    metadata: MetadataStub, artifacts: ArtifactStub, first: str, second: str
) -> None:
    version = await new_version(metadata)
    await upload(artifacts, version.name, first, b"first")
    reason, details, message = await refused(
        upload(artifacts, version.name, second, b"second"), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "MANIFEST_PATH_CONFLICT"
    assert details == {"path": second, "conflicting_path": first}
    assert repr(second) in message
    assert repr(first) in message
    assert await manifest_of(metadata, version.name) == {first: sha(b"first")}

    # The version stays usable: it seals and pulls as the one file it holds.
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ACTOR)


async def test_a_resumable_upload_of_a_conflicting_path_is_refused_before_any_bytes(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    await upload(artifacts, version.name, "dir/file", b"x")
    reason, details, _ = await refused(
        start_upload(artifacts, version.name, "dir", b"y" * 100), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (reason, details["conflicting_path"]) == ("MANIFEST_PATH_CONFLICT", "dir/file")
    reason, _, _ = await refused(
        start_upload(artifacts, version.name, "dir/file", b"other"), grpc.StatusCode.ALREADY_EXISTS
    )
    assert reason == "FILE_EXISTS"


async def test_the_manifest_service_refuses_conflicts_within_a_batch_and_against_the_manifest(
    metadata: MetadataStub, manifests: ManifestStub
) -> None:
    version = await new_version(metadata)

    def entry(path: str, data: bytes) -> model_pb2.ModelFile:
        return model_pb2.ModelFile(path=path, size_bytes=len(data), sha256=sha(data))

    reason, details, _ = await refused(
        manifests.BatchAddModelVersionFiles(
            mf.BatchAddModelVersionFilesRequest(
                model_version=version.name, files=[entry("a.txt", b"1"), entry("x/y", b"2"), entry("x", b"3")]
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (reason, details) == ("MANIFEST_PATH_CONFLICT", {"path": "x", "conflicting_path": "x/y"})
    assert await manifest_of(metadata, version.name) == {}  # one refused file refuses the batch

    await manifests.AddModelVersionFile(
        mf.AddModelVersionFileRequest(model_version=version.name, file=entry("Weights.bin", b"1"))
    )
    reason, details, _ = await refused(
        manifests.AddModelVersionFile(
            mf.AddModelVersionFileRequest(model_version=version.name, file=entry("weights.BIN", b"1"))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (reason, details) == (
        "MANIFEST_PATH_CONFLICT",
        {"path": "weights.BIN", "conflicting_path": "Weights.bin"},
    )
    # Even asked to replace: a replacement is of the same path, never of a look-alike.
    await refused(
        manifests.AddModelVersionFile(
            mf.AddModelVersionFileRequest(
                model_version=version.name, file=entry("weights.BIN", b"2"), replace_existing=True
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_concurrent_uploads_fail_only_the_one_that_conflicts(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    """The artifact service batches files that finish together into one manifest change; a
    conflicting file must fail its own upload, not its neighbours'."""
    version = await new_version(metadata)
    files = {f"plain/{i}.bin": f"plain {i}".encode() for i in range(8)}
    files |= {"clash": b"a file", "clash/inner": b"under a directory"}
    outcomes = await asyncio.gather(
        *(upload(artifacts, version.name, path, data) for path, data in files.items()),
        return_exceptions=True,
    )
    failed = {
        path: outcome
        for path, outcome in zip(files, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    }
    assert len(failed) == 1, failed
    assert set(failed) <= {"clash", "clash/inner"}
    (error,) = failed.values()
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error)[0] == "MANIFEST_PATH_CONFLICT"
    stored = await manifest_of(metadata, version.name)
    assert stored == {path: sha(data) for path, data in files.items() if path not in failed}


async def test_other_content_at_a_path_is_refused_unless_replaced_and_a_replacement_is_audited(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    await upload(artifacts, version.name, "model.bin", b"first weights")

    reason, details, message = await refused(
        upload(artifacts, version.name, "model.bin", b"second weights"), grpc.StatusCode.ALREADY_EXISTS
    )
    assert (reason, details["path"], details["sha256"]) == ("FILE_EXISTS", "model.bin", sha(b"first weights"))
    assert "replace_existing" in message
    await upload(artifacts, version.name, "model.bin", b"first weights")  # the same again: a no-op
    assert await manifest_of(metadata, version.name) == {"model.bin": sha(b"first weights")}

    spec = art.UploadSpec(
        model_version=version.name,
        path="model.bin",
        size_bytes=len(b"second weights"),
        sha256=sha(b"second weights"),
        replace_existing=True,
    )
    await artifacts.UploadFile(upload_messages(spec, b"second weights"), metadata=ACTOR)
    assert await manifest_of(metadata, version.name) == {"model.bin": sha(b"second weights")}

    events = await events_when(metadata, 2, resource=version.name, actions=[
        "MODEL_VERSION_FILE_ADDED", "MODEL_VERSION_FILE_REPLACED"
    ])  # fmt: skip
    assert [e.action for e in events] == ["MODEL_VERSION_FILE_ADDED", "MODEL_VERSION_FILE_REPLACED"]
    replaced = events[1]
    assert (replaced.actor, replaced.via) == ("user:alice@example.com", "service:artifacts")
    assert [f["sha256"] for f in MessageToDict(replaced.before)["files"]] == [sha(b"first weights")]
    assert [f["sha256"] for f in MessageToDict(replaced.after)["files"]] == [sha(b"second weights")]


async def _pending_version_with(stack: LocalStack, token: str, model: str, path: str, data: bytes) -> None:
    """Version 2 of `model`, PENDING with one file, made through gRPC with the CLI actor's token:
    as a training job leaves a version that died after its first upload."""
    async with (
        grpc.aio.insecure_channel(stack.addresses.metadata) as metadata_channel,
        grpc.aio.insecure_channel(stack.addresses.artifacts) as artifact_channel,
    ):
        metadata = metadata_service_pb2_grpc.MetadataServiceStub(metadata_channel)
        artifacts = artifact_service_pb2_grpc.ArtifactServiceStub(artifact_channel)
        version = await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(parent=f"namespaces/{model.replace('/', '/models/')}"),
            metadata=bearer(token),
        )
        assert version.number == 2
        await upload(artifacts, version.name, path, data, metadata=bearer(token))


def test_cli_push_into_a_pending_version_replaces_only_with_replace_and_pulls_what_it_holds(
    cli: Cli, stack: LocalStack, tmp_path: Path
) -> None:
    model = f"team-a/{unique('replace')}"
    first = tmp_path / "first"
    (first / "weights").mkdir(parents=True)
    (first / "weights" / "model.bin").write_bytes(b"epoch 1")
    (first / "config.json").write_text("{}")
    cli.ok("push", model, str(first))  # version 1, READY: pulled as pushed
    cli.ok("pull", f"{model}/1", str(tmp_path / "pulled-1"))
    assert (tmp_path / "pulled-1" / "weights" / "model.bin").read_bytes() == b"epoch 1"
    assert (tmp_path / "pulled-1" / "config.json").read_text() == "{}"

    asyncio.run(_pending_version_with(stack, cli.env[TOKEN_ENV], model, "weights/model.bin", b"epoch 1"))
    second = tmp_path / "second"
    (second / "weights").mkdir(parents=True)
    (second / "weights" / "model.bin").write_bytes(b"epoch 2")
    error = cli.fails(EXIT_CONFLICT, "push", model, str(second), "--version", "2", "--quiet")
    assert "weights/model.bin" in error
    assert "replace" in error
    assert cli.json("versions", "show", f"{model}/2")["state"] == "MODEL_VERSION_STATE_PENDING"
    refused_usage = cli.run("push", model, str(second), "--version", "2", "--param", "lr=1")
    assert refused_usage.returncode == 2, refused_usage.stderr  # metadata is not pushed into a version

    cli.ok("push", model, str(second), "--version", "2", "--replace")
    shown = cli.json("versions", "show", f"{model}/2")
    assert shown["state"] == "MODEL_VERSION_STATE_READY"
    assert [(f["path"], f["sha256"]) for f in shown["files"]] == [("weights/model.bin", sha(b"epoch 2"))]
    cli.ok("pull", f"{model}/2", str(tmp_path / "pulled-2"))
    assert (tmp_path / "pulled-2" / "weights" / "model.bin").read_bytes() == b"epoch 2"

    deadline = time.monotonic() + 15
    while True:  # the relay places events in the trail a moment after the change
        events = cli.json("events", "--resource", f"{model}/2", "--action", "MODEL_VERSION_FILE_REPLACED")
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(e["action"], e["actor"]) for e in events] == [("MODEL_VERSION_FILE_REPLACED", cli.principal)]
