"""The rules a version's manifest holds so that every client can materialise it as a directory.

A manifest is a flat list of paths, but `modelreg pull` writes it out as files and directories, on
Linux, macOS and Windows alike. Two kinds of path pairs cannot both be written:
- a file path that is a directory of another (`dir` and `dir/file`, `ok.bin` and `ok.bin/sub`);
- two paths that name the same file on a case-insensitive file system (`OK.BIN` and `ok.bin`,
  the default on macOS and Windows), or the same name in two Unicode normalizations (`é` as one
  code point or as `e` + combining accent: macOS normalizes names).

Both are compared through `path_key`: Unicode NFC, then `str.casefold()` (full case folding, so
`STRASSE` and `straße` collide too), segment by segment. Both services use these rules: the
metadata service refuses a conflicting file inside the version's write (so concurrent adds cannot
slip two conflicting paths in), the artifact service before a resumable upload receives bytes.

A path already in the manifest with other content is not replaced silently either: the caller
says it means to (`replace_existing`), and the replacement is an audit event of its own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from modelreg_api.errors import AlreadyExists, FailedPrecondition

PATH_CONFLICT = "MANIFEST_PATH_CONFLICT"
FILE_EXISTS = "FILE_EXISTS"
_SHOWN_CHARS = 80  # error messages and their metadata quote a short prefix of a path


def path_key(path: str) -> str:
    """The path as file systems may compare it: NFC, then case-folded (NFC again after folding,
    since folding can undo the composition)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _shown(path: str) -> str:
    return repr(path if len(path) <= _SHOWN_CHARS else path[:_SHOWN_CHARS] + "...")


def _prefix_keys(key: str) -> list[str]:
    """The directories a path needs, as keys: `a/b/c` -> `a`, `a/b`."""
    segments = key.split("/")
    return ["/".join(segments[:i]) for i in range(1, len(segments))]


class ManifestPaths:
    """An index of a manifest's paths by key, and by the directories they need."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._files: dict[str, str] = {}  # key -> path as stored
        self._directories: dict[str, str] = {}  # directory key -> a file path under it
        for path in paths:
            self.add(path)

    def conflict(self, path: str) -> str | None:
        """The stored path that `path` cannot live beside, if any (the same path is no conflict:
        adding it again is the replacement rule's business)."""
        key = path_key(path)
        same = self._files.get(key)
        if same is not None and same != path:
            return same  # the same name on a case-insensitive or normalizing file system
        if same is None and key in self._directories:
            return self._directories[key]  # `path` is a directory of a stored file
        for directory in _prefix_keys(key):
            if directory in self._files:
                return self._files[directory]  # a stored file is a directory of `path`
        return None

    def add(self, path: str) -> None:
        key = path_key(path)
        self._files[key] = path
        for directory in _prefix_keys(key):
            self._directories.setdefault(directory, path)


def check_path(paths: ManifestPaths, path: str, version: str) -> None:
    """Refuses `path` if it cannot live in the same directory tree as the manifest's paths.

    FAILED_PRECONDITION, not INVALID_ARGUMENT (AIP-193): the path is valid on its own, and is
    refused only because of what the version already holds (remove nothing, use another path or
    another version)."""
    other = paths.conflict(path)
    if other is None:
        return
    if path_key(other) == path_key(path):
        why = "the two name one file on case-insensitive file systems (macOS, Windows)"
    elif path_key(other).startswith(path_key(path) + "/"):
        why = "the new path would have to be a directory for the other"
    else:
        why = "the new path needs the other, a file, to be a directory"
    raise FailedPrecondition(
        f"model version {version}: file path {_shown(path)} conflicts with {_shown(other)}: {why}; "
        "a version must be writable as one directory tree on every system",
        reason=PATH_CONFLICT,
        metadata={"path": path[:_SHOWN_CHARS], "conflicting_path": other[:_SHOWN_CHARS]},
    )


def file_exists(path: str, present_sha256: str, sha256: str, version: str) -> AlreadyExists:
    """The refusal of other content at a path already in the manifest, when the caller did not
    say it replaces the file (`replace_existing`)."""
    return AlreadyExists(
        f"model version {version} already has {_shown(path)} with other content "
        f"(sha256 {present_sha256[:12]}..., not {sha256[:12]}...); set replace_existing to replace it",
        reason=FILE_EXISTS,
        metadata={"path": path[:_SHOWN_CHARS], "sha256": present_sha256},
    )
