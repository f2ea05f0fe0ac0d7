"""A manifest is not trusted with the local file system: paths that could escape are refused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from modelreg.cache import BlobCache, place
from modelreg.destination import survey
from modelreg.errors import UnsafeManifest
from modelreg.pulls import plan_targets
from modelregistry.v1 import model_pb2


def _files(*paths: str) -> list[model_pb2.ModelFile]:
    return [model_pb2.ModelFile(path=p, size_bytes=1, sha256="0" * 64) for p in paths]


def test_targets_stay_under_the_destination(tmp_path: Path) -> None:
    targets = plan_targets(tmp_path / "dest", _files("model.bin", "tokenizer/vocab.json"))
    root = (tmp_path / "dest").resolve()
    assert targets == [root / "model.bin", root / "tokenizer" / "vocab.json"]


@pytest.mark.parametrize(
    "path", ["../outside", "/etc/passwd", "a/../../b", "a\\..\\b", "a//b", "./a", "a/\x00", ""]
)
def test_escaping_or_unnormalized_paths_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafeManifest, match="refusing"):
        plan_targets(tmp_path, _files(path))


def test_a_path_that_is_both_file_and_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeManifest, match="directory"):
        plan_targets(tmp_path, _files("weights", "weights/part-1"))


def test_place_never_shows_a_partial_file_and_links_read_only_blobs(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    blob = cache.blob_path("ab" * 32)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"content")
    target = tmp_path / "out" / "file"
    target.parent.mkdir()
    target.write_bytes(b"old")
    place(blob, target, copy=False)
    assert target.read_bytes() == b"content"
    assert os.path.samefile(blob, target)
    place(blob, target, copy=True)
    assert target.read_bytes() == b"content"
    assert not os.path.samefile(blob, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["file"]  # no temporary left over


def test_the_survey_names_links_and_special_paths_in_the_way_and_keeps_the_same_bytes(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    root.mkdir()
    (root / "same.bin").write_bytes(b"same")
    (tmp_path / "elsewhere").write_bytes(b"same")
    (root / "link.bin").symlink_to(tmp_path / "elsewhere")  # even with the right bytes: not a file of ours
    digest = hashlib.sha256(b"same").hexdigest()
    files = [
        model_pb2.ModelFile(path=p, size_bytes=4, sha256=digest) for p in ("same.bin", "link.bin", "new.bin")
    ]
    targets = plan_targets(root, files)

    found = survey(root.resolve(), files, targets, lambda sha256: tmp_path / "no-cache" / sha256)

    assert found.present == {root.resolve() / "same.bin"}
    assert [(item.path.name, item.found) for item in found.in_the_way] == [("link.bin", "a symbolic link")]
