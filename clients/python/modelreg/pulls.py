"""Pull: a version's files into a local directory, each verified against its SHA-256.

Every blob is fetched into the cache first (or into a staging directory inside the destination
when the cache is off), then all files are placed under their names. A failed download therefore
places nothing, and a file under its final name is always complete and verified.

Before anything is fetched, the destination is surveyed (destination.py): a pull never replaces
something it did not put there unless forced, and never deletes files the manifest does not name.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from modelreg_api.names import InvalidResourceName, ModelVersionName, check_file_path
from modelregistry.v1 import model_pb2

from modelreg import destination as local
from modelreg.cache import BlobCache, place
from modelreg.downloads import Downloader
from modelreg.errors import DestinationInTheWay, UnsafeManifest
from modelreg.progress import Direction, Outcome, TransferProgress
from modelreg.results import PullResult, TransferredFile

STAGING_DIR = ".modelreg-partial"


def plan_targets(destination: Path, files: Sequence[model_pb2.ModelFile]) -> list[Path]:
    """Where each manifest file goes under `destination`; refuses anything that could escape it.

    The services validate paths too, but a client must not trust a manifest with its file system:
    absolute paths, `..`, backslashes and files that would have to be both a file and a directory
    are refused before anything is written. Blocking (it may create `destination`).
    """
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    paths = {file.path for file in files}
    targets = []
    for file in files:
        try:
            check_file_path(file.path, "files.path")
        except InvalidResourceName as exc:
            raise UnsafeManifest(f"refusing to write manifest path {file.path!r}: {exc.message}") from exc
        segments = file.path.split("/")
        for depth in range(1, len(segments)):
            if "/".join(segments[:depth]) in paths:
                raise UnsafeManifest(
                    f"manifest path {file.path!r} needs {'/'.join(segments[:depth])!r} to be a "
                    "directory, but the manifest also lists it as a file"
                )
        targets.append(root.joinpath(*segments))
    return targets


def _make_parent(root: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # A directory that already exists under the destination may be a link to elsewhere.
    if not target.parent.resolve().is_relative_to(root):
        raise UnsafeManifest(f"{target.parent} leads outside {root} (a symbolic link); refusing to write")


async def pull_files(
    downloader: Downloader,
    version: model_pb2.ModelVersion,
    version_name: ModelVersionName,
    destination: Path,
    *,
    cache_root: Path | None,
    copy: bool,
    force: bool = False,
    parallel: int,
    progress: TransferProgress,
) -> PullResult:
    files = list(version.files)
    targets = await asyncio.to_thread(plan_targets, destination, files)
    root = await asyncio.to_thread(destination.resolve)
    staging = cache_root is None
    cache = BlobCache(root / STAGING_DIR if cache_root is None else cache_root, read_only_blobs=not staging)
    found = await asyncio.to_thread(local.survey, root, files, targets, cache.blob_path)
    if found.in_the_way and not force:
        raise DestinationInTheWay(
            local.describe(root, found.in_the_way), [str(item.path) for item in found.in_the_way]
        )

    by_digest: dict[str, model_pb2.ModelFile] = {}
    for file in files:
        by_digest.setdefault(file.sha256, file)
    # Content every one of whose targets already holds it is not fetched at all: a repeated
    # pull (an init container restarted) costs the survey's hashing, not a download.
    needed = {file.sha256 for file, target in zip(files, targets, strict=True) if target not in found.present}
    fetched: dict[str, tuple[Outcome, int]] = {}
    limit = asyncio.Semaphore(parallel)

    async def fetch(file: model_pb2.ModelFile) -> None:
        async with limit:
            progress.file_started(file.path, file.size_bytes)
            if file.sha256 not in needed:
                progress.advance(file.size_bytes)
                fetched[file.sha256] = (Outcome.IN_PLACE, 0)
            elif await asyncio.to_thread(cache.find, file.sha256, file.size_bytes) is not None:
                progress.advance(file.size_bytes)
                fetched[file.sha256] = (Outcome.FROM_CACHE, 0)
            else:
                received = await downloader.download(version_name, file, cache, progress)
                fetched[file.sha256] = (Outcome.DOWNLOADED, received)
            progress.file_done(file.path, file.size_bytes, fetched[file.sha256][0])

    progress.begin(Direction.DOWNLOAD, len(by_digest), sum(f.size_bytes for f in by_digest.values()))
    try:
        async with asyncio.TaskGroup() as group:
            for file in by_digest.values():
                group.create_task(fetch(file))
        await asyncio.to_thread(_place_all, cache, root, files, targets, found, copy=copy, staging=staging)
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    finally:
        progress.end()
    if staging:
        await asyncio.to_thread(shutil.rmtree, root / STAGING_DIR, True)

    transferred, seen = [], set()
    for file in files:
        # A digest is fetched once; further files with the same content come from the cache.
        outcome, received = fetched[file.sha256]
        if file.sha256 in seen and outcome is not Outcome.IN_PLACE:
            outcome, received = Outcome.FROM_CACHE, 0
        seen.add(file.sha256)
        transferred.append(TransferredFile(file.path, file.size_bytes, file.sha256, outcome, received))
    return PullResult(version, destination, transferred)


def _place_all(
    cache: BlobCache,
    root: Path,
    files: list[model_pb2.ModelFile],
    targets: list[Path],
    found: local.Survey,
    *,
    copy: bool,
    staging: bool,
) -> None:
    # Only a forced pull gets here with paths in the way; those and no others are cleared, and
    # only now that every blob is verified, so a failed download leaves the user's files alone.
    for item in found.in_the_way:
        local.clear(item)
    linked: set[str] = set()
    for file, target in zip(files, targets, strict=True):
        blob = cache.blob_path(file.sha256)
        _make_parent(root, target)
        if target in found.present:
            continue
        # Staged blobs are writable and deleted afterwards: the first file with a digest takes the
        # blob itself, later files with the same digest get copies, so no two files share bytes
        # that a write through one would change in the other.
        place(blob, target, copy=copy or (staging and file.sha256 in linked))
        linked.add(file.sha256)
