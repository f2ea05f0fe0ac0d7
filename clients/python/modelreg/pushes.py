"""Push: local files become a sealed model version, and an interrupted push continues.

A push hashes the files, creates a PENDING version, uploads the files in parallel, seals the
version and optionally points an alias at it. The push journal (in the cache directory) remembers
the version that a push of exactly this content and metadata created, so running the same push
again after a crash or a kill continues that version: files already in its manifest are not sent
again, and no stray second version is created.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modelreg_api.names import ModelName, ModelVersionName, parse_model_version_name
from modelregistry.v1 import model_pb2

from modelreg.errors import NotFound
from modelreg.journal import Journal
from modelreg.local_files import LocalFile
from modelreg.progress import Direction, Outcome, TransferProgress
from modelreg.results import TransferredFile
from modelreg.uploads import Uploader


@dataclass(frozen=True, slots=True)
class PushRecord:
    # Sent with CreateModelVersion, so a create retried after a lost response is the same create.
    request_id: str
    version: str = ""


def push_key(model: ModelName, draft: model_pb2.ModelVersion, files: list[LocalFile]) -> str:
    """The push journal's key: the model, the version's metadata and every file's content."""
    identity = hashlib.sha256()
    identity.update(str(model).encode())
    identity.update(draft.SerializeToString(deterministic=True))
    for file in files:
        identity.update(f"\n{file.path}\0{file.size_bytes}\0{file.sha256}".encode())
    return identity.hexdigest()


def _load(journal: Journal, key: str) -> PushRecord | None:
    record = journal.load(key)
    if record is None or "request_id" not in record:
        return None
    return PushRecord(request_id=str(record["request_id"]), version=str(record.get("version", "")))


def _save(journal: Journal, key: str, record: PushRecord) -> None:
    journal.save(key, {"request_id": record.request_id, "version": record.version})


def _continuable(version: model_pb2.ModelVersion, files: list[LocalFile]) -> bool:
    """True when the push can finish this version: a PENDING one holding only our files, or a
    READY one holding exactly our files (the earlier push was killed after sealing)."""
    ours = {f.path: (f.size_bytes, f.sha256) for f in files}
    theirs = {f.path: (f.size_bytes, f.sha256) for f in version.files}
    if version.deleted:
        return False
    if version.state == model_pb2.MODEL_VERSION_STATE_PENDING:
        return all(ours.get(path) == entry for path, entry in theirs.items())
    return version.state == model_pb2.MODEL_VERSION_STATE_READY and ours == theirs


async def resume_or_create(
    journal: Journal,
    key: str,
    files: list[LocalFile],
    get_version: Callable[[str], Awaitable[model_pb2.ModelVersion]],
    create_version: Callable[[str], Awaitable[model_pb2.ModelVersion]],
    *,
    request_id: str = "",
) -> tuple[model_pb2.ModelVersion, bool]:
    """The version this push works on, and whether it was left by an interrupted earlier push.

    `request_id` names the push from outside (a Kubernetes Job's uid): a retry on another machine,
    with an empty cache and so no journal, still creates no second version, because the service
    answers a repeated create with the version the first one made.
    """
    record = _load(journal, key)
    if request_id and (record is None or record.request_id != request_id):
        record = PushRecord(request_id=request_id)
    if record is not None and record.version:
        try:
            earlier = await get_version(record.version)
        except NotFound:
            earlier = None
        if earlier is not None and _continuable(earlier, files):
            return earlier, True
    record = record or PushRecord(request_id=uuid.uuid4().hex)
    _save(journal, key, record)
    version = await create_version(record.request_id)
    _save(journal, key, PushRecord(record.request_id, version.name))
    # A version the service had created already for this request id: the push continues it.
    started = bool(version.files) or version.state != model_pb2.MODEL_VERSION_STATE_PENDING
    return version, bool(request_id) and started


async def upload_missing(
    uploader: Uploader,
    version: model_pb2.ModelVersion,
    files: list[LocalFile],
    *,
    parallel: int,
    progress: TransferProgress,
    replace: bool = False,
) -> list[TransferredFile]:
    """Upload every file the version's manifest lacks, `parallel` at a time.

    Content the registry already stores (another version's weights, a shared tokenizer) is
    recorded without sending a byte; large files go through resumable upload sessions. A file the
    manifest holds with other content is replaced only with `replace` (else the service refuses
    it: `AlreadyExists`, reason FILE_EXISTS).
    """
    name: ModelVersionName = parse_model_version_name(version.name)
    present = {f.path: (f.size_bytes, f.sha256) for f in version.files}
    needed = [f for f in files if present.get(f.path) != (f.size_bytes, f.sha256)]
    stored = await uploader.stored_blobs(name, (f.sha256 for f in needed)) if needed else set()
    outcomes: dict[str, tuple[Outcome, int, str, int, int]] = {}
    limit = asyncio.Semaphore(parallel)

    async def send(file: LocalFile) -> None:
        async with limit:
            progress.file_started(file.path, file.size_bytes)
            if present.get(file.path) == (file.size_bytes, file.sha256):
                progress.advance(file.size_bytes)
                outcomes[file.path] = (Outcome.ALREADY_PRESENT, 0, "", file.size_bytes, 0)
                uploader.forget(name, file)  # a session that finished before a kill
            else:
                report = await uploader.upload(
                    name, file, progress, stored=file.sha256 in stored, replace=replace
                )
                outcomes[file.path] = (
                    report.outcome,
                    report.sent_bytes,
                    report.session,
                    report.skipped_bytes,
                    report.resumed_streams,
                )
            progress.file_done(file.path, file.size_bytes, outcomes[file.path][0])

    progress.begin(Direction.UPLOAD, len(files), sum(f.size_bytes for f in files))
    try:
        async with asyncio.TaskGroup() as group:
            for file in files:
                group.create_task(send(file))
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    finally:
        progress.end()
    return [TransferredFile(f.path, f.size_bytes, f.sha256, *outcomes[f.path]) for f in files]
