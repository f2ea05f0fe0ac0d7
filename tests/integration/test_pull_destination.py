"""A pull never destroys local work: what a destination already holds is kept, or the pull refuses.

Through the real `modelreg` command (and the SDK for the exception's fields): a different file
under a version's path, a directory where a file goes, a file where a directory goes, and an older
or newer version's files are all "in the way"; the pull names them, changes nothing and exits 4,
unless `--force`, which replaces exactly those paths and never touches files the version does not
name. The same bytes already in place (a repeated pull, or the user's own copy) are kept as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelreg import Client
from modelreg.errors import DestinationInTheWay
from modelreg_local.stack import LocalStack

from tests.command_line import MIB, Cli, write_files
from tests.integration.credentials import ready_credential_for
from tests.support import unique

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    with Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, "user:pull-reader@example.com", "viewer"),
        cache_dir=tmp_path / "sdk-cache",
    ) as registry:
        yield registry


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def push_two_versions(cli: Cli, tmp_path: Path) -> tuple[str, Path, Path]:
    """A model whose version 1 and 2 differ in `weights.bin` and in which other files they have."""
    model = f"team-a/{unique('pulldest')}"
    first, second = tmp_path / "v1", tmp_path / "v2"
    write_files(first, {"weights.bin": MIB, "config.json": 100})
    write_files(second, {"weights.bin": MIB, "config.json": 100, "tokenizer/vocab.txt": 200})
    (second / "config.json").write_bytes((first / "config.json").read_bytes())  # unchanged in v2
    cli.ok("push", model, str(first))
    cli.ok("push", model, str(second))
    return model, first, second


def test_pulling_an_older_version_over_a_newer_one_is_refused_and_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    model, _, second = push_two_versions(cli, tmp_path)
    destination = tmp_path / "serving"
    cli.ok("pull", f"{model}/2", str(destination))
    before = snapshot(destination)

    error = cli.fails(4, "pull", f"{model}/1", str(destination))

    assert "weights.bin (a different file)" in error
    assert "config.json" not in error  # the same bytes are not in the way
    assert "--force" in error
    assert snapshot(destination) == before == snapshot(second)


def test_force_replaces_exactly_the_paths_in_the_way_and_keeps_other_files(cli: Cli, tmp_path: Path) -> None:
    model, first, second = push_two_versions(cli, tmp_path)
    destination = tmp_path / "serving"
    cli.ok("pull", f"{model}/2", str(destination))
    (destination / "notes.txt").write_text("mine")

    cli.ok("pull", f"{model}/1", str(destination), "--force")

    after = snapshot(destination)
    assert after["weights.bin"] == (first / "weights.bin").read_bytes()
    assert after["config.json"] == (first / "config.json").read_bytes()
    # Not in version 1, so not the pull's to delete: still there, untouched.
    assert after["tokenizer/vocab.txt"] == (second / "tokenizer" / "vocab.txt").read_bytes()
    assert after["notes.txt"] == b"mine"


def test_a_users_own_file_under_a_versions_path_is_never_replaced_silently(cli: Cli, tmp_path: Path) -> None:
    model, _, _ = push_two_versions(cli, tmp_path)
    destination = tmp_path / "work"
    destination.mkdir()
    (destination / "weights.bin").write_bytes(b"my fine-tuned weights")
    (destination / "tokenizer").write_text("a file where the version needs a directory")

    error = cli.fails(4, "pull", f"{model}/2", str(destination))

    assert "weights.bin (a different file)" in error
    assert "tokenizer (a file)" in error
    assert (destination / "weights.bin").read_bytes() == b"my fine-tuned weights"
    assert sorted(p.name for p in destination.iterdir()) == ["tokenizer", "weights.bin"]


def test_a_directory_where_a_file_goes_is_in_the_way(cli: Cli, tmp_path: Path) -> None:
    model, first, _ = push_two_versions(cli, tmp_path)
    destination = tmp_path / "work"
    (destination / "weights.bin").mkdir(parents=True)
    (destination / "weights.bin" / "shard-0").write_bytes(b"keep me")

    error = cli.fails(4, "pull", f"{model}/1", str(destination), "--no-cache")

    assert "weights.bin (a directory)" in error
    assert (destination / "weights.bin" / "shard-0").read_bytes() == b"keep me"
    cli.ok("pull", f"{model}/1", str(destination), "--no-cache", "--force")
    assert (destination / "weights.bin").read_bytes() == (first / "weights.bin").read_bytes()


def test_the_same_bytes_already_in_place_are_kept_as_they_are(cli: Cli, tmp_path: Path) -> None:
    model, first, _ = push_two_versions(cli, tmp_path)
    destination = tmp_path / "copy"
    destination.mkdir()
    own = destination / "weights.bin"
    own.write_bytes((first / "weights.bin").read_bytes())
    inode = own.stat().st_ino

    cli.ok("pull", f"{model}/1", str(destination))
    cli.ok("pull", f"{model}/1", str(destination))  # and a repeated pull is no conflict either

    assert own.stat().st_ino == inode  # the user's writable copy, not replaced by a cache link
    assert os.access(own, os.W_OK)
    assert snapshot(destination) == snapshot(first)


def test_the_sdk_raises_destination_in_the_way_naming_every_path(
    client: Client, cli: Cli, tmp_path: Path
) -> None:
    model, _, _ = push_two_versions(cli, tmp_path)
    destination = tmp_path / "sdk"
    destination.mkdir()
    for name in ("weights.bin", "config.json"):
        (destination / name).write_text("other")

    with pytest.raises(DestinationInTheWay) as refused:
        client.pull(f"{model}/2", destination)

    assert sorted(Path(p).name for p in refused.value.paths) == ["config.json", "weights.bin"]
    assert refused.value.reason == "DESTINATION_NOT_EMPTY"
    assert (destination / "weights.bin").read_text() == "other"
