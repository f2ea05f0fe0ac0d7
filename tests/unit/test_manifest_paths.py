"""The manifest path rules (modelreg_api/manifests.py), pair by pair: which paths can live in one
directory tree on Linux, macOS and Windows alike."""

from __future__ import annotations

import unicodedata

import pytest
from modelreg_api import manifests
from modelreg_api.errors import FailedPrecondition

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(
    ("stored", "added"),
    [
        ("dir/file", "dir"),
        ("dir", "dir/file"),
        ("a/b/c", "a"),
        ("a", "a/b/c"),
        ("ok.bin", "OK.BIN"),
        ("Straße", "STRASSE"),
        (NFC, NFD),
        (f"{NFD}/x", NFC),
        ("Model/weights", "model"),
        ("model", "MODEL/weights"),
    ],
)
def test_conflicting_pairs_are_refused_naming_both_paths(stored: str, added: str) -> None:
    paths = manifests.ManifestPaths([stored])
    assert paths.conflict(added) == stored
    with pytest.raises(FailedPrecondition) as refused:
        manifests.check_path(paths, added, "namespaces/a/models/b/versions/1")
    assert refused.value.reason == manifests.PATH_CONFLICT
    assert refused.value.metadata == {"path": added, "conflicting_path": stored}


@pytest.mark.parametrize(
    ("stored", "added"),
    [
        ("dir/a", "dir/b"),
        ("Dir/a", "dir/b"),  # one directory on macOS, two on Linux: either way both files exist
        ("dir.bin", "dir"),
        ("dirx/file", "dir"),
        ("a/b", "a/b"),  # the same path: the replacement rule's business, not a conflict
        ("weights", "weights.bin"),
    ],
)
def test_paths_that_can_live_together_pass(stored: str, added: str) -> None:
    assert manifests.ManifestPaths([stored]).conflict(added) is None


def test_long_paths_are_quoted_as_a_short_prefix() -> None:
    long = "d" * 900
    paths = manifests.ManifestPaths([f"{long}/x"])
    with pytest.raises(FailedPrecondition) as refused:
        manifests.check_path(paths, long, "namespaces/a/models/b/versions/1")
    assert len(refused.value.message) < 400
    assert len(refused.value.metadata["path"]) == 80
