"""One stream's bytes into one upload session: hash, cut into parts, store, record.

Memory per stream is bounded by the part size times (parts in flight + 1): the buffers are
allocated once and reused, and when object storage is slower than the client, `write` waits for
the oldest part before accepting more bytes. That stops reading from the gRPC stream and so
pushes back on the sender through HTTP/2 flow control.

Chunks are copied into the part buffer as they arrive; each full part is then hashed on the
I/O pool while it uploads (one hand-off per part, not per chunk). Parts are hashed strictly in
order, each after the previous one, so the running SHA-256 is the file's.

The CRC32C that object storage checks for each part (see `objects.s3`) is extended with each
chunk as it is copied: the chunk is an immutable `bytes` then, which the CRC32C extension needs
(the part buffer is not), and hardware CRC32C costs about 0.2 ms per 1 MiB message.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass

import google_crc32c
from modelreg_api.errors import InvalidArgument, OutOfRange, RegistryError

from modelreg_artifacts.domain import StoredPart, UploadSession
from modelreg_artifacts.hashing import LiveHashes
from modelreg_artifacts.objects import ObjectStore, object_key
from modelreg_artifacts.store import UploadSessionStore


@dataclass
class _PartInFlight:
    stored: asyncio.Future[str]
    # The hash of the file up to the end of this part, saved once the part is recorded.
    hashed: asyncio.Future[hashlib._Hash | None]
    # The part is in the session record (`committed_size` moved past it). It runs on its own,
    # right when object storage acknowledges the part: neither the next chunk nor the end of the
    # stream has to come first, so a broken stream loses at most the parts still in flight.
    recorded: asyncio.Future[None]
    buffer: bytearray

    def cancel(self) -> None:
        for future in (self.stored, self.hashed, self.recorded):
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: its error was reported by the part before it


class PartWriter:
    def __init__(
        self,
        objects: ObjectStore,
        sessions: UploadSessionStore,
        hashes: LiveHashes,
        session: UploadSession,
        *,
        hasher: hashlib._Hash | None,
        parts_in_flight: int,
    ):
        self._objects = objects
        self._sessions = sessions
        self._hashes = hashes
        self.session = session
        # None when the bytes before `committed_size` were hashed by a process that is gone.
        self._hasher = hasher
        self._parts_in_flight = parts_in_flight
        self._key = object_key(session.id)
        self._received = session.committed_size
        self._buffer: bytearray | None = None
        self._buffer_start = session.committed_size
        self._fill = 0
        self._crc32c = 0  # of the buffer's first `_fill` bytes
        self._spare: list[bytearray] = []
        self._in_flight: deque[_PartInFlight] = deque()
        self._last_hashed: asyncio.Future[hashlib._Hash | None] | None = None

    @property
    def received(self) -> int:
        return self._received

    @property
    def key(self) -> str:
        return self._key

    async def write(self, offset: int, data: bytes) -> None:
        spec = self.session.spec
        if offset != self._received:
            raise InvalidArgument(
                "write_offset",
                f"is {offset} but the session continues at {self._received} "
                f"(committed_size {self.session.committed_size}); send the bytes in order from there",
                reason="WRITE_OFFSET_MISMATCH",
                metadata={"committed_size": str(self.session.committed_size)},
            )
        if offset + len(data) > spec.size_bytes:
            raise OutOfRange(
                f"data ends at byte {offset + len(data)}, past the declared size "
                f"{spec.size_bytes} of {spec.path!r}",
                reason="PAST_DECLARED_SIZE",
            )
        while self._in_flight and self._in_flight[0].recorded.done():
            await self._retire_oldest()  # reuse its buffer; raises if recording it failed
        view = memoryview(data)
        while view:
            buffer = self._current_buffer()
            piece, view = view[: len(buffer) - self._fill], view[len(buffer) - self._fill :]
            # A chunk that spans two parts is the only one copied, for the CRC32C of each side.
            self._absorb(buffer, piece, data if len(piece) == len(data) else bytes(piece))
            if self.session.multipart and self._fill == len(buffer):
                await self._send_part()

    def _current_buffer(self) -> bytearray:
        if self._buffer is None:
            if self._spare:
                self._buffer = self._spare.pop()
            else:
                # Small files are kept whole and stored with one PUT at finish.
                size = self.session.part_bytes if self.session.multipart else self.session.spec.size_bytes
                self._buffer = bytearray(size)
        return self._buffer

    def _absorb(self, buffer: bytearray, piece: memoryview, same_bytes: bytes) -> None:
        buffer[self._fill : self._fill + len(piece)] = piece
        self._crc32c = google_crc32c.extend(self._crc32c, same_bytes)
        self._fill += len(piece)
        self._received += len(piece)

    async def _hash_after(
        self, previous: asyncio.Future[hashlib._Hash | None] | None, data: bytearray | memoryview
    ) -> hashlib._Hash | None:
        if previous is not None:
            await previous
        if self._hasher is None:
            return None
        await self._objects.run(self._hasher.update, data)
        return self._hasher.copy()

    async def _send_part(self) -> None:
        buffer, size = self._current_buffer(), self._fill
        while len(self._in_flight) >= self._parts_in_flight:
            await self._retire_oldest()
        if not self.session.multipart_id:
            multipart_id = await self._objects.start_multipart(self._key, self.session.spec.content_type)
            # Only a refusal (taken over, or ended) says the session will never name this upload.
            # Any other failure leaves it unknown: a stream cut while the write is in flight is
            # cancelled without its answer, yet the write may land (even after a read here), and
            # the next stream, on any replica, then stores its parts in this upload; aborting it
            # would fail every later stream of the session with S3's NoSuchUpload. So it is kept,
            # and if no session names it the sweeper aborts it
            # (`GarbageCollector._abort_untracked_multiparts`).
            try:
                self.session = await self._sessions.set_multipart_id(self.session, multipart_id)
            except RegistryError:
                await asyncio.shield(self._objects.abort_multipart(self._key, multipart_id))
                raise
        number = self._buffer_start // self.session.part_bytes + 1
        data = buffer if size == len(buffer) else memoryview(buffer)[:size]
        stored = asyncio.ensure_future(
            self._objects.upload_part(self._key, self.session.multipart_id, number, data, crc32c=self._crc32c)
        )
        self._last_hashed = asyncio.ensure_future(self._hash_after(self._last_hashed, data))
        previous = self._in_flight[-1].recorded if self._in_flight else None
        recorded = asyncio.ensure_future(self._record(previous, stored, self._last_hashed, number, size))
        self._in_flight.append(_PartInFlight(stored, self._last_hashed, recorded, buffer))
        self._buffer, self._fill, self._crc32c = None, 0, 0
        self._buffer_start += size

    async def _record(
        self,
        previous: asyncio.Future[None] | None,
        stored: asyncio.Future[str],
        hashed: asyncio.Future[hashlib._Hash | None],
        number: int,
        size: int,
    ) -> None:
        """Record a part once object storage has it, after the parts before it (a prefix)."""
        if previous is not None:
            await previous  # parts are recorded in order: `committed_size` covers a prefix
        etag = await stored
        hash_at_end = await hashed
        self.session = await self._sessions.record_part(self.session, StoredPart(number, etag, size))
        if hash_at_end is not None:
            self._hashes.save(self.session.id, self.session.committed_size, hash_at_end)

    async def _retire_oldest(self) -> None:
        part = self._in_flight[0]
        await part.recorded
        self._in_flight.popleft()
        self._spare.append(part.buffer)

    async def flush(self) -> str | None:
        """Store every received byte (multipart files); the file's SHA-256 if this process knows it.

        A small file's bytes stay in memory: the caller stores them after verification (`whole`).
        """
        if self.session.multipart:
            if self._fill:
                await self._send_part()
            while self._in_flight:
                await self._retire_oldest()
        elif self._hasher is not None:
            await self._objects.run(self._hasher.update, self.whole())
        return self._hasher.hexdigest() if self._hasher is not None else None

    def whole(self) -> memoryview:
        """A small file's bytes, received in full."""
        return memoryview(self._buffer or b"")[: self._fill]

    @property
    def whole_crc32c(self) -> int:
        """The CRC32C of `whole()`."""
        return self._crc32c

    async def pause(self) -> None:
        """The stream ended early: keep the parts object storage already has, drop the rest.

        Parts in flight are recorded as object storage acknowledges them (each records itself,
        so this also holds when the stream's task is cancelled meanwhile); bytes after the last
        recorded part are forgotten and the client sends them again from `committed_size`.
        Never raises: it runs while another error is on its way out.
        """
        while self._in_flight:
            try:
                await self._retire_oldest()
            except BaseException:
                break
        for part in self._in_flight:
            part.cancel()
        self._in_flight.clear()
        self._buffer, self._fill, self._crc32c, self._spare = None, 0, 0, []
