"""Upload sessions and the blob index: the artifact service's records, kept in MongoDB.

The use cases rely on the two interfaces here; `upload_sessions` and `blob_index` implement them
on the service's own collections (`artifact_upload_sessions` with `artifact_upload_leads`, and
`artifact_blobs`). Those live beside the metadata service's collections but are never read by
it (nor theirs by us): the services talk only through gRPC. Every invariant is kept in one
document or guarded by compare-and-set, within the subset of MongoDB that FerretDB v1 supports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from modelreg_artifacts.domain import BlobRecord, StoredPart, UploadSession, UploadState


class UploadSessionStore(Protocol):
    """What any replica needs to continue, finish or clean up an upload.

    Every change is a compare-and-set on (`state`, `writer_epoch`), and recording a part also on
    `committed_size`, so two streams that both believe they own a session can never both
    advance it: the one that took it over last wins, the other one gets ABORTED
    (UPLOAD_TAKEN_OVER), or the precise error of `domain.refuse_unless_active` when the session
    no longer accepts bytes. An ended session stays unreleased until its stored parts are freed
    (`mark_released`); the sweeper finishes that job if the replica that started it died.
    """

    async def insert(self, session: UploadSession) -> UploadSession: ...

    async def get(self, upload_id: str) -> UploadSession:
        """The session, or NotFound (it may have been purged)."""
        ...

    async def take_over(self, upload_id: str) -> UploadSession:
        """Make the caller the session's only writer (bumps `writer_epoch`)."""
        ...

    async def set_multipart_id(self, session: UploadSession, multipart_id: str) -> UploadSession:
        """Record the multipart upload that holds the session's parts (once)."""
        ...

    async def record_part(self, session: UploadSession, part: StoredPart) -> UploadSession:
        """Persist an acknowledged part: `committed_size` moves past it, for every replica to see."""
        ...

    async def end(
        self,
        session: UploadSession,
        state: UploadState,
        *,
        released: bool,
        blob_reused: bool = False,
        failure_reason: str = "",
        failure_message: str = "",
        owned: bool = True,
    ) -> UploadSession:
        """ACTIVE -> a terminal state. `owned` requires the caller to still be the writer."""
        ...

    async def mark_released(self, upload_id: str) -> None:
        """What the ended session stored that is not a blob has been freed."""
        ...

    async def declaring(self, digests: list[str]) -> set[str]:
        """Digests that ACTIVE sessions declare: their blobs may be claimed any moment."""
        ...

    async def lead(self, session: UploadSession, since: datetime) -> str:
        """The id of the session that sends the bytes of `session`'s content (maybe its own):
        one per digest across replicas; a holder idle since `since` loses the lead."""
        ...

    async def uploading(self, digests: list[str], progressed_since: datetime) -> set[str]:
        """Digests that an ACTIVE session making progress since `progressed_since` declares."""
        ...

    async def overdue(self, moment: datetime, limit: int) -> list[UploadSession]:
        """ACTIVE sessions past their expiry at `moment`."""
        ...

    async def unreleased(self, limit: int) -> list[UploadSession]:
        """Ended sessions whose stored parts are not freed yet."""
        ...

    async def is_active(self, upload_id: str) -> bool: ...

    async def purge(self, moment: datetime) -> int:
        """Delete released sessions whose retention ended by `moment`; returns how many."""
        ...


class BlobIndex(Protocol):
    """SHA-256 -> the verified object holding those bytes.

    A record is added only after the bytes were verified, so a digest is visible (to dedup,
    downloads and verification) exactly when its bytes are. Objects are never overwritten: each
    upload writes its own object, and of two concurrent uploads of the same content exactly one
    becomes the blob; the other one's object is deleted by its uploader.

    Deletion is compare-and-set on `claim_time`: the collector first flips a record it found
    unclaimed to DELETING, then deletes the object, then the record. An upload that claims the
    blob before the flip wins (the flip fails); one that comes after sees no blob and stores its
    own.
    """

    async def get(self, sha256: str) -> BlobRecord | None:
        """The blob of a digest; None when it is not stored (or being deleted)."""
        ...

    async def present(self, digests: list[str]) -> set[str]:
        """Which of `digests` are stored."""
        ...

    async def claim(self, sha256: str, moment: datetime) -> BlobRecord | None:
        """Mark the blob as relied upon now; None when it is not stored (or being deleted)."""
        ...

    async def add(self, record: BlobRecord) -> BlobRecord:
        """Make a verified object the blob of its digest; returns the blob that holds the digest.

        When another upload of the same content won, its record is returned (claimed) and the
        caller deletes its own object.
        """
        ...

    async def references_object(self, object_key: str) -> bool:
        """Whether a record (of any state) names this object."""
        ...

    async def page(self, after: str, limit: int) -> list[BlobRecord]:
        """Stored blobs in digest order, after `after` (keyset paging for the collector)."""
        ...

    async def start_deleting(self, record: BlobRecord) -> bool:
        """ACTIVE -> DELETING only if nobody claimed the blob since `record` was read."""
        ...

    async def deleting(self) -> list[BlobRecord]:
        """Records a collector flipped to DELETING but did not finish removing (it crashed)."""
        ...

    async def forget(self, record: BlobRecord) -> None:
        """Remove a DELETING record, only while it still names `record.object_key`."""
        ...
