"""Upload use cases: start a session, receive its bytes, verify them, publish the file.

How a file becomes visible, and why it is never visible unverified
------------------------------------------------------------------
Each session writes its bytes to its own object, `blobs/<upload id>`: a PUT for a file that fits
in one part, an S3 multipart upload otherwise. That object is invisible until the blob index
(`store.BlobIndex`, MongoDB) maps the declared SHA-256 to it, and that record is written only after
the bytes were verified. Downloads, dedup and verification all go through the index.

- Live path (the usual one): this process hashed every byte of the file, either because it
  received all of them or because it resumed from a hash snapshot it took at the committed
  offset (`hashing.LiveHashes`). Size and SHA-256 are checked before the multipart upload is
  completed or the PUT is sent; on a mismatch the parts are aborted and nothing is completed.
- Recovered path: the bytes before `committed_size` were hashed by a process that is gone (it
  was killed, or the client moved to another replica). hashlib's state cannot be persisted, and
  the parts of an incomplete multipart upload cannot be read back, so the upload is completed
  into the session's own (still invisible) object, read back in full and hashed; only a match
  adds the index record, a mismatch deletes the object. This costs one extra read of the file,
  and only after a crash or a change of replica.

Why not complete straight to a key named by the digest (`blobs/sha256/<hex>`): a multipart
upload's key is fixed when it starts, before anyone knows whether the hasher will survive, so
after a crash that key would expose unverified bytes; and copying a verified temporary object
to a digest key costs a full server-side copy on every upload (2.5-7.7 s per GiB on SeaweedFS
here, against 9-15 s for the upload itself). The index gives content addressing without copies,
and a unique digest `_id` makes concurrent uploads of the same content safe: one object wins,
the others are deleted, and the bytes are stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import google_crc32c
import structlog
from modelreg_api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RegistryError
from modelreg_api.names import UploadSessionName
from modelregistry.v1 import model_pb2

from modelreg_artifacts.domain import (
    BlobRecord,
    StoredFile,
    UploadSession,
    UploadSpec,
    UploadState,
    check_manifest_entry,
    new_upload_id,
    now,
    part_size_for,
    refuse_unless_active,
)
from modelreg_artifacts.hashing import LiveHashes
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_artifacts.metrics import UPLOAD_SESSIONS_ACTIVE, UPLOADED_BYTES
from modelreg_artifacts.objects import ObjectStore, object_key
from modelreg_artifacts.part_writer import PartWriter
from modelreg_artifacts.store import BlobIndex, UploadSessionStore

log = structlog.get_logger("modelreg.artifacts.uploads")

# Errors from the metadata service that no retry of the same finish can fix.
_FINAL_ERRORS = (FailedPrecondition, NotFound, InvalidArgument, AlreadyExists)


@dataclass(frozen=True)
class Chunk:
    write_offset: int
    data: bytes
    finish_write: bool
    crc32c: int | None = None


# Data messages: 256 KiB to 1 MiB is the sweet spot; more than 2 MiB is refused (a message is
# held whole in memory before a byte of it is stored, and gRPC's own limit is 4 MiB).
MAX_CHUNK_BYTES = 2 * 1024 * 1024
# Only the last message of a stream may carry less. Each message costs a fixed amount of work
# (decode, checks, a CRC32C call, event-loop round trips: tens of microseconds), so a stream of
# one-byte messages keeps a core busy for minutes per few MB; with this floor a stream of N bytes
# takes at most N / 64 KiB + 3 messages.
MIN_CHUNK_BYTES = 64 * 1024


class ChunkBounds:
    """The documented bounds of one stream's data messages (docs/artifact-protocol.md)."""

    def __init__(self) -> None:
        self._first = True
        self._short_at: int | None = None  # offset of a message below the floor

    def check(self, chunk: Chunk, continues_at: int) -> None:
        """`continues_at`: where the stream must continue (a wrong offset is reported as such)."""
        length = len(chunk.data)
        if length > MAX_CHUNK_BYTES:
            raise InvalidArgument(
                "data",
                f"carries {length} bytes at offset {chunk.write_offset}; a message carries at most "
                f"{MAX_CHUNK_BYTES} (2 MiB), 1 MiB is recommended",
                reason="CHUNK_TOO_LARGE",
            )
        if self._short_at is not None and not chunk.finish_write and chunk.write_offset == continues_at:
            raise InvalidArgument(
                "data",
                f"the message at offset {self._short_at} carried fewer than {MIN_CHUNK_BYTES} bytes "
                "(64 KiB) but was not the stream's last: only the last message (the file's end, or "
                "the one before finish_write) may be that short; 1 MiB per message is recommended",
                reason="CHUNK_TOO_SMALL",
            )
        if length < MIN_CHUNK_BYTES and not (self._first and not length):
            self._short_at = chunk.write_offset  # the first message may be a header without data
        self._first = False


def check_chunk_checksum(chunk: Chunk) -> None:
    if chunk.crc32c is not None and google_crc32c.value(chunk.data) != chunk.crc32c:
        raise InvalidArgument(
            "crc32c",
            f"the {len(chunk.data)} bytes at offset {chunk.write_offset} do not match their CRC32C; "
            "they were not stored: send them again",
            reason="CHUNK_CHECKSUM_MISMATCH",
        )


class Uploads:
    def __init__(
        self,
        objects: ObjectStore,
        sessions: UploadSessionStore,
        blobs: BlobIndex,
        metadata: MetadataClient,
        hashes: LiveHashes,
        *,
        part_bytes: int,
        parts_in_flight: int,
        session_ttl: timedelta,
        stall_after: timedelta = timedelta(seconds=60),
    ):
        self._objects = objects
        self._sessions = sessions
        self._blobs = blobs
        self._metadata = metadata
        self._hashes = hashes
        self._part_bytes = part_bytes
        self._parts_in_flight = parts_in_flight
        self._session_ttl = session_ttl
        # An upload that recorded nothing (no start, no part) for this long no longer holds
        # back other uploads of its content: they send the bytes themselves.
        self._stall_after = stall_after

    async def start(
        self, spec: UploadSpec, *, as_writer: bool = False, persist: bool = True
    ) -> UploadSession:
        """A new ACTIVE session, or a FINISHED one when the blob is already stored (no bytes needed)."""
        if persist:
            # Refuse early, before the client sends any bytes; a transient upload is refused by
            # the manifest at its end instead, which costs nothing since its bytes are few.
            version, stored = await asyncio.gather(
                self._metadata.get_version(spec.model_version), self._blobs.get(spec.sha256)
            )
            if version.state != model_pb2.MODEL_VERSION_STATE_PENDING:
                raise FailedPrecondition(
                    f"model version {spec.model_version} is sealed; files are added only while it is PENDING",
                    reason="VERSION_SEALED",
                )
            check_manifest_entry({f.path: f.sha256 for f in version.files}, spec)
        else:
            # A one-shot upload's bytes are already on their way in the same stream: the blob
            # index is asked once, when they have arrived (`_finish` claims a stored blob then,
            # before anything is stored), instead of twice.
            stored = None
        if stored is not None and stored.size_bytes != spec.size_bytes:
            raise InvalidArgument(
                "spec.size_bytes",
                f"declared {spec.size_bytes} bytes, but blob {spec.sha256} has {stored.size_bytes}",
                reason="SIZE_MISMATCH",
            )
        moment = now()
        session = UploadSession(
            id=new_upload_id(),
            spec=spec,
            state=UploadState.ACTIVE,
            committed_size=0,
            part_bytes=part_size_for(spec.size_bytes, self._part_bytes),
            writer_epoch=1 if as_writer else 0,
            create_time=moment,
            update_time=moment,
            expire_time=moment + self._session_ttl,
            persisted=persist,
        )
        # The session is recorded before the blob is claimed: the collector spares digests that
        # ACTIVE sessions declare, so the claimed blob cannot vanish before the manifest has it.
        # (A transient upload relies on the claim alone: it reaches the manifest within seconds,
        # far inside the grace period.)
        if persist:
            await self._sessions.insert(session)
        if stored is None or await self._blobs.claim(spec.sha256, now()) is None:
            # A one-shot upload (`as_writer`) streams its bytes anyway: nobody to tell to wait.
            if as_writer:
                return session
            session = await self._with_concurrent_upload(session)
            # Taking the lead races the holder finishing: it stores the blob, then gives the lead
            # up, so a lead won after our first look may be for content stored meanwhile. Look
            # again before asking for the bytes (publishing ends the session and drops its lead).
            if session.concurrent_upload:
                return session
            stored = await self._blobs.claim(spec.sha256, now())
            if stored is None:
                return session
            if stored.size_bytes != spec.size_bytes:  # as above: the declared size is wrong
                await self._end(session, UploadState.CANCELLED)
                raise InvalidArgument(
                    "spec.size_bytes",
                    f"declared {spec.size_bytes} bytes, but blob {spec.sha256} has {stored.size_bytes}",
                    reason="SIZE_MISMATCH",
                )
        return await self._publish(session, blob_reused=True)

    async def get(self, name: UploadSessionName) -> UploadSession:
        session = await self._sessions.get(name.upload)
        session = replace(session, state=session.state_at(now()))
        if session.state is not UploadState.ACTIVE or session.committed_size:
            return session
        return await self._with_concurrent_upload(session)

    async def _with_concurrent_upload(self, session: UploadSession) -> UploadSession:
        """Name the session that is storing the same content right now, if it is not this one.

        Concurrent pushes of one file (into several models, from several replicas) then send its
        bytes about once: one session per digest holds the lead (in the session store, so it
        holds across replicas), the others wait for the blob and reuse it. A holder that ends
        gives the lead up, and one that records nothing for `stall_after` loses it, so nobody
        waits forever.
        """
        if await self._blobs.get(session.spec.sha256) is not None:
            return session
        holder = await self._sessions.lead(session, now() - self._stall_after)
        return session if holder == session.id else replace(session, concurrent_upload=holder)

    async def write(self, name: UploadSessionName, chunks: AsyncIterator[Chunk]) -> UploadSession:
        """Receive a stream into a session; it stays ACTIVE unless the stream finished it."""
        session = await self._sessions.take_over(name.upload)
        return await self._receive(session, chunks)

    async def upload(self, spec: UploadSpec, chunks: AsyncIterator[Chunk]) -> StoredFile:
        """A whole file in one stream: a session nobody resumes, cancelled if the stream fails."""
        single_part = spec.size_bytes <= part_size_for(spec.size_bytes, self._part_bytes)
        # A one-part file reaches the manifest within milliseconds of its start, so a batch of
        # its version's manifest changes may wait for it (MetadataClient.expecting).
        replacing = spec.replace_existing
        with (
            self._metadata.expecting(spec.model_version, replacing)
            if single_part
            else contextlib.nullcontext()
        ):
            session = await self.start(spec, as_writer=True, persist=not single_part)
            if session.state is UploadState.FINISHED:
                return session.file
            try:
                ended = await self._receive(session, chunks)
            except BaseException:
                await asyncio.shield(self._abandon(session))
                raise
        if ended.state is not UploadState.FINISHED:
            await self._abandon(session)
            raise InvalidArgument("finish_write", "the stream ended without finish_write; nothing was stored")
        return ended.file

    async def cancel(self, name: UploadSessionName) -> UploadSession:
        session = await self._sessions.get(name.upload)
        refuse_unless_active(session, now())
        ended = await self._end(session, UploadState.CANCELLED, released=False, owned=False)
        await self.release_storage(ended)
        return ended

    async def _abandon(self, session: UploadSession) -> None:
        if not session.persisted:
            return  # it stored nothing before verification, and a verified blob is kept
        try:
            current = await self._sessions.get(session.id)
            if current.state is UploadState.ACTIVE:
                ended = await self._end(current, UploadState.CANCELLED, released=False, owned=False)
                await self.release_storage(ended)
        except RegistryError:
            pass  # the sweeper frees whatever is left once the session expires

    async def _receive(self, session: UploadSession, chunks: AsyncIterator[Chunk]) -> UploadSession:
        writer = PartWriter(
            self._objects,
            self._sessions,
            self._hashes,
            session,
            hasher=self._hashes.resume(session.id, session.committed_size),
            parts_in_flight=self._parts_in_flight,
        )
        bounds = ChunkBounds()
        UPLOAD_SESSIONS_ACTIVE.inc()
        try:
            async for chunk in chunks:
                bounds.check(chunk, writer.received)
                check_chunk_checksum(chunk)
                UPLOADED_BYTES.inc(len(chunk.data))
                await writer.write(chunk.write_offset, chunk.data)
                if chunk.finish_write:
                    return await self._finish(writer)
        except BaseException:
            await asyncio.shield(writer.pause())
            raise
        finally:
            UPLOAD_SESSIONS_ACTIVE.dec()
        await writer.pause()
        return await self._sessions.get(session.id) if session.persisted else writer.session

    async def _finish(self, writer: PartWriter) -> UploadSession:
        spec = writer.session.spec
        if writer.received != spec.size_bytes:
            raise InvalidArgument(
                "spec.size_bytes",
                f"declared {spec.size_bytes} bytes for {spec.path!r} but {writer.received} arrived",
                reason="SIZE_MISMATCH",
            )
        digest = await writer.flush()
        session = writer.session
        if digest is not None and digest != spec.sha256:
            raise await self._refuse(
                session,
                "spec.sha256",
                f"declared {spec.sha256} for {spec.path!r} but the received bytes hash to {digest}",
                "DIGEST_MISMATCH",
            )
        if digest is not None and await self._blobs.claim(spec.sha256, now()) is not None:
            if session.multipart_id:  # stored once already: drop our parts
                await self._objects.abort_multipart(writer.key, session.multipart_id)
            return await self._publish(session, blob_reused=True)
        key = writer.key
        if not session.multipart:
            await self._objects.put(key, writer.whole(), spec.content_type, crc32c=writer.whole_crc32c)
        else:
            completed = await self._objects.complete_multipart(
                key, session.multipart_id, [(p.number, p.etag) for p in session.parts]
            )
            if digest is None or not completed:  # recovered path, or a finish that crashed midway
                await self._check_stored(session, key)
        moment = now()
        blob = await self._blobs.add(BlobRecord(spec.sha256, spec.size_bytes, key, moment, moment))
        if blob.object_key != key:  # a concurrent upload of the same content won
            await self._objects.delete(key)
        return await self._publish(session, blob_reused=blob.object_key != key)

    async def _check_stored(self, session: UploadSession, key: str) -> None:
        """Read a completed object back and hash it (the hasher of its first bytes is gone)."""
        spec = session.spec
        log.info("reading back a resumed upload to verify it", upload=session.id, size_bytes=spec.size_bytes)
        found = await self._objects.digest_of(key)
        if found is None:
            raise await self._refuse(
                session, "upload_session", "the stored parts of this upload are gone", "UPLOAD_PARTS_LOST"
            )
        size, digest = found
        if size != spec.size_bytes:
            raise await self._refuse(
                session,
                "spec.size_bytes",
                f"declared {spec.size_bytes} bytes for {spec.path!r} but {size} were stored",
                "SIZE_MISMATCH",
            )
        if digest != spec.sha256:
            raise await self._refuse(
                session,
                "spec.sha256",
                f"declared {spec.sha256} for {spec.path!r} but the received bytes hash to {digest}",
                "DIGEST_MISMATCH",
            )

    async def _refuse(self, session: UploadSession, field: str, message: str, reason: str) -> InvalidArgument:
        """End the session as FAILED (nothing becomes visible) and return the error to raise."""
        ended = await self._end(
            session, UploadState.FAILED, released=False, failure_reason=reason, failure_message=message
        )
        await self.release_storage(ended)
        return InvalidArgument(field, message, reason=reason)

    async def _publish(self, session: UploadSession, *, blob_reused: bool) -> UploadSession:
        """Add the verified file to the version's manifest, then mark the session FINISHED."""
        try:
            spec = session.spec
            await self._metadata.add_file(spec.model_version, session.file, spec.replace_existing)
        except _FINAL_ERRORS as exc:
            ended = await self._end(
                session,
                UploadState.FAILED,
                released=False,
                failure_reason=exc.reason,
                failure_message=exc.message,
            )
            await self.release_storage(ended)
            raise
        # Other errors (the metadata service unavailable) leave the session ACTIVE with every
        # byte committed: sending finish_write again repeats only what is missing.
        finished = await self._end(session, UploadState.FINISHED, released=True, blob_reused=blob_reused)
        self._hashes.forget(session.id)
        return finished

    async def _end(self, session: UploadSession, state: UploadState, **outcome: Any) -> UploadSession:
        if session.persisted:
            return await self._sessions.end(session, state, **outcome)
        return replace(
            session,
            state=state,
            blob_reused=outcome.get("blob_reused", False),
            failure_reason=outcome.get("failure_reason", ""),
            failure_message=outcome.get("failure_message", ""),
        )

    async def release_storage(self, session: UploadSession) -> None:
        """Free what a session stored that is not (or no longer) a blob: its parts, its object."""
        key = object_key(session.id)
        if session.multipart_id:
            await self._objects.abort_multipart(key, session.multipart_id)
        if not await self._blobs.references_object(key):
            await self._objects.delete(key)
        self._hashes.forget(session.id)
        if session.persisted:
            await self._sessions.mark_released(session.id)

    async def find_missing(self, digests: list[str]) -> tuple[list[str], list[str]]:
        """The digests no blob has, and those of them an upload session is storing right now."""
        present = await self._blobs.present(digests)
        missing = [digest for digest in dict.fromkeys(digests) if digest not in present]
        if not missing:
            return [], []
        busy = await self._sessions.uploading(missing, now() - self._stall_after)
        return missing, [digest for digest in missing if digest in busy]
