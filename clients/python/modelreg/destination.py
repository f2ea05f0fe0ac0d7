"""What a pull finds already in its destination, so that it never destroys local work.

A pull writes a version's files under their manifest paths. Whatever is already there falls in
one of three groups:

- the same bytes (a repeated pull, or the user's copy of the same file): left as it is;
- something else under a path the pull must write (a different file, a directory where a file
  goes, a file where a directory goes, a symbolic link): *in the way*. The pull refuses before
  it downloads anything and names every such path, unless the caller forces it, in which case
  those paths (and only those) are replaced;
- files the manifest does not name: never touched, with or without force.

Same bytes means same size and same SHA-256; the digest is computed only when the sizes agree,
so a directory full of other files costs a `stat` each.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelregistry.v1 import model_pb2

from modelreg.cache import same_file
from modelreg.local_files import sha256_of

# How many paths the error message lists; the exception carries them all.
_LISTED = 10


@dataclass(frozen=True, slots=True)
class InTheWay:
    """A local path the pull would have to replace, and what is there."""

    path: Path
    found: str  # "a different file", "a directory", "a file", "a symbolic link"


@dataclass(frozen=True, slots=True)
class Survey:
    """The destination as the pull found it."""

    # Targets that already hold the manifest's bytes: nothing to write there.
    present: frozenset[Path]
    in_the_way: tuple[InTheWay, ...]


def survey(
    root: Path,
    files: Sequence[model_pb2.ModelFile],
    targets: Sequence[Path],
    cached_blob: Callable[[str], Path],
) -> Survey:
    """Look at every target and its parent directories under `root`. Blocking (it may hash).

    `cached_blob(sha256)` is where the cache keeps a digest: a target that is a hard link to it
    (a repeated pull) is known to hold those bytes without reading them again.
    """
    present: set[Path] = set()
    in_the_way: dict[Path, InTheWay] = {}
    for file, target in zip(files, targets, strict=True):
        for parent in _parents_below(root, target):
            kind = _kind(parent)
            if kind not in ("missing", "a directory"):
                in_the_way.setdefault(parent, InTheWay(parent, "a file" if kind == "file" else kind))
        kind = _kind(target)
        if kind == "missing":
            continue
        if kind == "file" and (same_file(cached_blob(file.sha256), target) or _holds(target, file)):
            present.add(target)
        else:
            in_the_way.setdefault(target, InTheWay(target, "a different file" if kind == "file" else kind))
    return Survey(frozenset(present), tuple(in_the_way.values()))


def describe(root: Path, in_the_way: Sequence[InTheWay]) -> str:
    """One line naming the paths in the way (the first few) and what to do."""
    listed = ", ".join(f"{_relative(root, item.path)} ({item.found})" for item in in_the_way[:_LISTED])
    more = f" and {len(in_the_way) - _LISTED} more" if len(in_the_way) > _LISTED else ""
    return (
        f"{len(in_the_way)} path(s) in {root} hold something other than this version's files: "
        f"{listed}{more}; nothing was changed. Pull into an empty directory, or pass force "
        "(--force) to replace exactly these paths"
    )


def clear(item: InTheWay) -> None:
    """Remove what is in the way (forced pulls only). Blocking."""
    if item.found == "a directory":
        shutil.rmtree(item.path)
    else:
        item.path.unlink()


def _parents_below(root: Path, target: Path) -> list[Path]:
    parents = []
    for parent in target.parents:
        if parent == root:
            break
        parents.append(parent)
    return parents[::-1]


def _kind(path: Path) -> str:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"  # a parent is a file: reported for the parent itself
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "file"
    return "a special file"


def _holds(target: Path, file: model_pb2.ModelFile) -> bool:
    if target.stat().st_size != file.size_bytes:
        return False
    digest, _ = sha256_of(target)
    return digest == file.sha256


def _relative(root: Path, path: Path) -> str:
    return os.path.relpath(path, root)
