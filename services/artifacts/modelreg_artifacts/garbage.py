"""Garbage collection of blobs and the clean-up of abandoned uploads.

A blob is deleted only when all of these hold, checked in this order:
1. it has been unclaimed for the whole grace period (uploads claim a blob when they rely on it);
2. no ACTIVE upload session declares its digest (such a session may claim it any moment);
3. the metadata service reports that no manifest references it (soft-deleted versions count:
   they keep their blobs until purged);
4. the compare-and-set ACTIVE -> DELETING on its unchanged `claim_time` succeeds.
A session that claims the blob after step 4 finds no blob and stores its bytes again, so a
manifest never points at a deleted blob. Only then are the object and the record removed; a
collector that dies half-way leaves DELETING records that the next run finishes.

Several replicas may collect at once: step 4 lets exactly one of them delete each blob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from modelreg_artifacts.domain import now
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.metrics import (
    GC_DELETED_BLOBS,
    GC_FREED_BYTES,
    GC_LAST_SUCCESS,
    GC_RUNS,
    UPLOAD_SESSIONS_EXPIRED,
)
from modelreg_artifacts.objects import OBJECT_PREFIX, ObjectStore, object_key
from modelreg_artifacts.store import BlobIndex, UploadSessionStore
from modelreg_artifacts.uploads import Uploads

log = structlog.get_logger("modelreg.artifacts.gc")

BATCH = 500
MAX_REPORTED_DIGESTS = 1000
OBJECT_ID_LENGTH = 32


@dataclass
class CollectionReport:
    dry_run: bool
    deleted_blobs: int = 0
    deleted_bytes: int = 0
    deleted_sha256s: list[str] = field(default_factory=list)
    kept_blobs: int = 0


class GarbageCollector:
    def __init__(
        self,
        objects: ObjectStore,
        blobs: BlobIndex,
        sessions: UploadSessionStore,
        metadata: MetadataClient,
        uploads: Uploads,
        *,
        grace: timedelta,
    ):
        self._objects = objects
        self._blobs = blobs
        self._sessions = sessions
        self._metadata = metadata
        self._uploads = uploads
        self._grace = grace

    async def collect(self, *, dry_run: bool) -> CollectionReport:
        dry = "true" if dry_run else "false"
        try:
            report = await self._collect(dry_run=dry_run)
        except BaseException:
            GC_RUNS.labels(dry, "error").inc()
            raise
        GC_RUNS.labels(dry, "ok").inc()
        if not dry_run:
            GC_DELETED_BLOBS.inc(report.deleted_blobs)
            GC_FREED_BYTES.inc(report.deleted_bytes)
            GC_LAST_SUCCESS.set_to_current_time()
        return report

    async def _collect(self, *, dry_run: bool) -> CollectionReport:
        report = CollectionReport(dry_run=dry_run)
        if not dry_run:
            for record in await self._blobs.deleting():  # left by a collector that died
                await self._objects.delete(record.object_key)
                await self._blobs.forget(record)
        cutoff = now() - self._grace
        after = ""
        while batch := await self._blobs.page(after, BATCH):
            after = batch[-1].sha256
            digests = [record.sha256 for record in batch]
            declared = await self._sessions.declaring(digests)
            referenced = set(await self._metadata.referenced([d for d in digests if d not in declared]))
            for record in batch:
                if record.sha256 in referenced:
                    continue
                if record.sha256 in declared or record.claim_time > cutoff:
                    report.kept_blobs += 1
                    continue
                if not dry_run:
                    if not await self._blobs.start_deleting(record):
                        report.kept_blobs += 1  # claimed meanwhile
                        continue
                    await self._objects.delete(record.object_key)
                    await self._blobs.forget(record)
                report.deleted_blobs += 1
                report.deleted_bytes += record.size_bytes
                if len(report.deleted_sha256s) < MAX_REPORTED_DIGESTS:
                    report.deleted_sha256s.append(record.sha256)
        if report.deleted_blobs or report.kept_blobs:
            log.info(
                "garbage collected" if not dry_run else "garbage found (dry run)",
                blobs=report.deleted_blobs,
                bytes=report.deleted_bytes,
                kept=report.kept_blobs,
            )
        return report

    async def sweep_sessions(self, limit: int = BATCH) -> int:
        """Expire overdue sessions, free what ended sessions left behind, purge old ones."""
        moment = now()
        swept = 0
        for session in await self._sessions.overdue(moment, limit):
            try:
                await self._sessions.end(session, session.state_at(moment), released=False, owned=False)
            except Exception:  # noqa: S112 - finished or taken over meanwhile; nothing to expire
                continue
            swept += 1
        UPLOAD_SESSIONS_EXPIRED.inc(swept)
        for session in await self._sessions.unreleased(limit):
            await self._uploads.release_storage(session)
        await self._abort_untracked_multiparts(moment - self._grace)
        purged = await self._sessions.purge(moment)
        if swept or purged:
            log.info("upload sessions swept", expired=swept, purged=purged)
        return swept

    async def _abort_untracked_multiparts(self, older_than: datetime) -> None:
        """Multipart uploads whose session never recorded them (a crash right after starting one)."""
        for pending in await self._objects.pending_multiparts():
            upload_id = pending.key.removeprefix(OBJECT_PREFIX)
            if pending.initiated is None or pending.initiated > older_than:
                continue
            if len(upload_id) == OBJECT_ID_LENGTH and await self._sessions.is_active(upload_id):
                continue
            await self._objects.abort_multipart(object_key(upload_id), pending.multipart_id)
