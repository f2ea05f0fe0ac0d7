"""The files of a local model: which ones a push sends, under which paths, with which digests."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from modelreg_api.names import InvalidResourceName, check_file_path

from modelreg.errors import LocalFileError
from modelreg.progress import Direction, Outcome, TransferProgress


@dataclass(frozen=True, slots=True)
class LocalFile:
    # The path inside the version, '/'-separated.
    path: str
    source: Path
    size_bytes: int
    sha256: str
    content_type: str


def sha256_of(source: Path) -> tuple[str, int]:
    """The file's SHA-256 and the number of bytes hashed (blocking: run it in a thread)."""
    with source.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256")
        return digest.hexdigest(), stream.tell()


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def find_files(root: Path) -> list[tuple[str, Path]]:
    """(path inside the version, file on disk) for a file or every file under a directory.

    A single file is pushed under its own name. Symbolic links to files are followed (Hugging
    Face snapshots are made of them); links to directories are refused rather than silently
    skipped or followed out of the tree.
    """
    try:
        mode = root.stat().st_mode
    except OSError as exc:
        raise LocalFileError(f"cannot read {root}: {exc.strerror}") from exc
    if stat.S_ISREG(mode):
        found = [(root.name, root)]
    elif stat.S_ISDIR(mode):
        found = []
        for directory, subdirs, files in os.walk(root, onerror=_raise_walk_error):
            base = Path(directory)
            for name in subdirs:
                if (base / name).is_symlink():
                    raise LocalFileError(f"{base / name} is a link to a directory; push its target instead")
            for name in files:
                source = base / name
                if not source.is_file():
                    raise LocalFileError(f"{source} is not a regular file (or a link to one)")
                found.append((source.relative_to(root).as_posix(), source))
    else:
        raise LocalFileError(f"{root} is neither a file nor a directory")
    if not found:
        raise LocalFileError(f"{root} contains no files; nothing to push")
    for path, _ in found:
        try:
            check_file_path(path)
        except InvalidResourceName as exc:
            raise LocalFileError(f"cannot push {root / path}: {exc.message}") from exc
    return sorted(found)


def _raise_walk_error(error: OSError) -> None:
    raise LocalFileError(f"cannot read {error.filename}: {error.strerror}") from error


def _sizes(found: list[tuple[str, Path]]) -> int:
    try:
        return sum(source.stat().st_size for _, source in found)
    except OSError as exc:
        raise LocalFileError(f"cannot read {exc.filename}: {exc.strerror}") from exc


async def describe_files(root: Path, parallel: int, progress: TransferProgress) -> list[LocalFile]:
    """Every file to push with its size and SHA-256, hashed in `parallel` threads.

    Hashing reads every byte once before the upload, which for a large model takes a while:
    it is reported as a phase of its own.
    """
    limit = asyncio.Semaphore(parallel)

    async def describe(path: str, source: Path) -> LocalFile:
        async with limit:
            progress.file_started(path, 0)
            try:
                digest, size = await asyncio.to_thread(sha256_of, source)
            except OSError as exc:
                raise LocalFileError(f"cannot read {source}: {exc.strerror}") from exc
            progress.advance(size)
            progress.file_done(path, size, Outcome.HASHED)
        return LocalFile(path, source, size, digest, _content_type(path))

    found = await asyncio.to_thread(find_files, root)
    progress.begin(Direction.HASH, len(found), await asyncio.to_thread(_sizes, found))
    try:
        return list(await asyncio.gather(*(describe(path, source) for path, source in found)))
    finally:
        progress.end()
