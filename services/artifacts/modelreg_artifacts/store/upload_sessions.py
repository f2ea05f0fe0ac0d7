"""Upload sessions in MongoDB (`store.UploadSessionStore`): one document per session.

Each compare-and-set is the filter of one single-document update (`_owned`: the session is
still ACTIVE, unexpired and at the caller's `writer_epoch`). Terminal sessions keep
`released: false` until their stored parts are freed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelreg_api.errors import Aborted, NotFound
from modelreg_api.names import parse_model_version_name
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from modelreg_artifacts.domain import (
    StoredPart,
    UploadSession,
    UploadSpec,
    UploadState,
    now,
    refuse_unless_active,
)
from modelreg_artifacts.store.database import ArtifactDatabase, Document


def _document(session: UploadSession) -> Document:
    spec = session.spec
    return {
        "_id": session.id,
        "model_version": str(spec.model_version),
        "path": spec.path,
        "size_bytes": spec.size_bytes,
        "sha256": spec.sha256,
        "content_type": spec.content_type,
        "replace_existing": spec.replace_existing,
        "state": session.state.value,
        "committed_size": session.committed_size,
        "part_bytes": session.part_bytes,
        "writer_epoch": session.writer_epoch,
        "multipart_id": session.multipart_id,
        "parts": [{"n": p.number, "etag": p.etag, "size": p.size_bytes} for p in session.parts],
        "blob_reused": session.blob_reused,
        "failure_reason": session.failure_reason,
        "failure_message": session.failure_message,
        "create_time": session.create_time,
        "update_time": session.update_time,
        "expire_time": session.expire_time,
        "released": session.state is UploadState.ACTIVE,
        "purge_time": None,
    }


def _session_from(doc: Document) -> UploadSession:
    return UploadSession(
        id=doc["_id"],
        spec=UploadSpec(
            model_version=parse_model_version_name(doc["model_version"]),
            path=doc["path"],
            size_bytes=doc["size_bytes"],
            sha256=doc["sha256"],
            content_type=doc["content_type"],
            replace_existing=doc.get("replace_existing", False),
        ),
        state=UploadState(doc["state"]),
        committed_size=doc["committed_size"],
        part_bytes=doc["part_bytes"],
        writer_epoch=doc["writer_epoch"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        expire_time=doc["expire_time"],
        multipart_id=doc.get("multipart_id", ""),
        parts=tuple(StoredPart(p["n"], p["etag"], p["size"]) for p in doc.get("parts", [])),
        blob_reused=doc.get("blob_reused", False),
        failure_reason=doc.get("failure_reason", ""),
        failure_message=doc.get("failure_message", ""),
    )


class MongoUploadSessionStore:
    def __init__(self, database: ArtifactDatabase, retention: timedelta):
        self._sessions = database.sessions
        self._leads = database.upload_leads
        self._retention = retention

    async def ensure_indexes(self) -> None:
        for index in (
            IndexModel([("state", ASCENDING), ("expire_time", ASCENDING)], name="state_expiry"),
            IndexModel([("sha256", ASCENDING), ("state", ASCENDING)], name="digest_state"),
            IndexModel([("released", ASCENDING), ("state", ASCENDING)], name="released_state"),
        ):
            await self._sessions.create_indexes([index])

    async def insert(self, session: UploadSession) -> UploadSession:
        await self._sessions.insert_one(_document(session))
        return session

    async def get(self, upload_id: str) -> UploadSession:
        doc = await self._sessions.find_one({"_id": upload_id})
        if doc is None:
            raise NotFound(f"upload session uploads/{upload_id} not found (it may have been purged)")
        return _session_from(doc)

    async def take_over(self, upload_id: str) -> UploadSession:
        """Make the caller the session's only writer (bumps `writer_epoch`)."""
        moment = now()
        doc = await self._sessions.find_one_and_update(
            {"_id": upload_id, "state": UploadState.ACTIVE.value, "expire_time": {"$gt": moment}},
            {"$inc": {"writer_epoch": 1}, "$set": {"update_time": moment}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            refuse_unless_active(await self.get(upload_id), moment)
            raise Aborted(f"upload session uploads/{upload_id} changed while being taken over; retry")
        return _session_from(doc)

    def _owned(self, session: UploadSession) -> Document:
        return {
            "_id": session.id,
            "state": UploadState.ACTIVE.value,
            "writer_epoch": session.writer_epoch,
            "expire_time": {"$gt": now()},
        }

    async def _lost(self, session: UploadSession) -> Exception:
        current = await self.get(session.id)
        refuse_unless_active(current, now())
        return Aborted(
            f"upload session {session.name} was taken over by another stream; "
            f"query it and resume from its committed_size ({current.committed_size})",
            reason="UPLOAD_TAKEN_OVER",
        )

    async def set_multipart_id(self, session: UploadSession, multipart_id: str) -> UploadSession:
        result = await self._sessions.update_one(
            {**self._owned(session), "multipart_id": ""},
            {"$set": {"multipart_id": multipart_id, "update_time": now()}},
        )
        if result.modified_count != 1:
            raise await self._lost(session)
        return replace(session, multipart_id=multipart_id)

    async def record_part(self, session: UploadSession, part: StoredPart) -> UploadSession:
        """Persist an acknowledged part: `committed_size` moves past it, for every replica to see."""
        committed = session.committed_size + part.size_bytes
        result = await self._sessions.update_one(
            {**self._owned(session), "committed_size": session.committed_size},
            {
                "$push": {"parts": {"n": part.number, "etag": part.etag, "size": part.size_bytes}},
                "$set": {"committed_size": committed, "update_time": now()},
            },
        )
        if result.modified_count != 1:
            raise await self._lost(session)
        return replace(session, committed_size=committed, parts=(*session.parts, part))

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
        moment = now()
        query = self._owned(session) if owned else {"_id": session.id, "state": UploadState.ACTIVE.value}
        doc = await self._sessions.find_one_and_update(
            query,
            {
                "$set": {
                    "state": state.value,
                    "released": released,
                    "blob_reused": blob_reused,
                    "failure_reason": failure_reason,
                    "failure_message": failure_message,
                    "update_time": moment,
                    "purge_time": moment + self._retention,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise await self._lost(session)
        # An ended session sends no more bytes: the next upload of its content takes the lead.
        await self._leads.delete_one({"_id": session.spec.sha256, "session": session.id})
        return _session_from(doc)

    async def mark_released(self, upload_id: str) -> None:
        await self._sessions.update_one({"_id": upload_id}, {"$set": {"released": True}})

    async def declaring(self, digests: list[str]) -> set[str]:
        """Digests that ACTIVE sessions declare: their blobs may be claimed any moment."""
        cursor = self._sessions.find(
            {"sha256": {"$in": digests}, "state": UploadState.ACTIVE.value}, {"sha256": True}
        )
        return {doc["sha256"] async for doc in cursor}

    async def lead(self, session: UploadSession, since: datetime) -> str:
        """The id of the session that sends the bytes of `session`'s content: whoever holds the
        digest's lead document, as long as it lives, else `session` itself.

        The lead is one document per digest (`_id` = SHA-256), taken by an insert or by a
        compare-and-set on the holder, so exactly one session wins however many replicas ask at
        once. A holder counts as alive while it took the lead after `since` or its session is
        ACTIVE and recorded something (a start, a part) after `since`; a dead holder's lead is
        taken over, so nobody waits for a stalled or vanished upload for long.
        """
        digest = session.spec.sha256
        for _ in range(3):
            try:
                await self._leads.insert_one({"_id": digest, "session": session.id, "since": now()})
                return session.id
            except DuplicateKeyError:
                pass
            doc = await self._leads.find_one({"_id": digest})
            if doc is None:
                continue  # released meanwhile: try to take it
            holder = str(doc["session"])
            if holder == session.id or doc["since"] > since or await self._progressing(holder, since):
                return holder
            taken = await self._leads.update_one(
                {"_id": digest, "session": holder}, {"$set": {"session": session.id, "since": now()}}
            )
            if taken.modified_count == 1:
                return session.id
        return session.id  # contended beyond reason: send the bytes (twice at worst, never stuck)

    async def _progressing(self, upload_id: str, since: datetime) -> bool:
        doc = await self._sessions.find_one(
            {
                "_id": upload_id,
                "state": UploadState.ACTIVE.value,
                "expire_time": {"$gt": now()},
                "update_time": {"$gt": since},
            },
            {"_id": True},
        )
        return doc is not None

    async def uploading(self, digests: list[str], progressed_since: datetime) -> set[str]:
        cursor = self._sessions.find(
            {
                "sha256": {"$in": digests},
                "state": UploadState.ACTIVE.value,
                "expire_time": {"$gt": now()},
                "update_time": {"$gt": progressed_since},
            },
            {"sha256": True},
        )
        return {doc["sha256"] async for doc in cursor}

    async def overdue(self, moment: datetime, limit: int) -> list[UploadSession]:
        cursor = self._sessions.find(
            {"state": UploadState.ACTIVE.value, "expire_time": {"$lte": moment}}
        ).limit(limit)
        return [_session_from(doc) async for doc in cursor]

    async def unreleased(self, limit: int) -> list[UploadSession]:
        cursor = self._sessions.find({"released": False, "state": {"$ne": UploadState.ACTIVE.value}}).limit(
            limit
        )
        return [_session_from(doc) async for doc in cursor]

    async def is_active(self, upload_id: str) -> bool:
        doc = await self._sessions.find_one(
            {"_id": upload_id, "state": UploadState.ACTIVE.value}, {"_id": True}
        )
        return doc is not None

    async def purge(self, moment: datetime) -> int:
        result = await self._sessions.delete_many({"released": True, "purge_time": {"$lte": moment}})
        return result.deleted_count
