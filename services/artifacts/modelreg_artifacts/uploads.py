"""Receiving one file: hash every byte, stream it into S3, make it visible only if verified.

Memory per upload is bounded by the part size times (parts in flight + 1): when S3 is slower
than the client, `write` waits for the oldest part before accepting more bytes, which stops
reading from the gRPC stream and so pushes back on the sender through flow control.
"""

from __future__ import annotations

import asyncio
import hashlib

from minio.datatypes import Part
from modelreg_common.errors import InvalidArgument, OutOfRange

from modelreg_artifacts.blobstore import S3BlobStore
from modelreg_artifacts.domain import UploadSpec


class BlobWriter:
    def __init__(self, store: S3BlobStore, spec: UploadSpec, part_bytes: int, parts_in_flight: int):
        self._store = store
        self._spec = spec
        self._part_bytes = part_bytes
        self._parts_in_flight = parts_in_flight
        self._hasher = hashlib.sha256()
        self._received = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        # Files that fit in one part skip multipart entirely: one PUT, no bookkeeping.
        self._multipart = spec.size_bytes > part_bytes
        self._upload_id = ""
        self._in_flight: list[asyncio.Task[Part]] = []
        self._parts: list[Part] = []

    @property
    def received(self) -> int:
        return self._received

    async def write(self, offset: int, data: bytes) -> None:
        if offset != self._received:
            raise InvalidArgument(
                "write_offset",
                f"is {offset} but {self._received} bytes have been received; send them in order",
            )
        if self._received + len(data) > self._spec.size_bytes:
            raise OutOfRange(
                f"data ends at byte {self._received + len(data)}, past the declared size "
                f"{self._spec.size_bytes} of {self._spec.path!r}",
                reason="PAST_DECLARED_SIZE",
            )
        await self._store.run(self._hasher.update, data)
        self._received += len(data)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._multipart:
            while self._buffered >= self._part_bytes:
                await self._send_part(self._take(self._part_bytes))

    def _take(self, size: int) -> bytes:
        joined = b"".join(self._buffer)
        part, rest = joined[:size], joined[size:]
        self._buffer = [rest] if rest else []
        self._buffered = len(rest)
        return part

    async def _send_part(self, data: bytes) -> None:
        if not self._upload_id:
            self._upload_id = await self._store.start_multipart(self._spec.sha256, self._spec.content_type)
        number = len(self._parts) + len(self._in_flight) + 1
        self._in_flight.append(
            asyncio.create_task(self._store.upload_part(self._spec.sha256, self._upload_id, number, data))
        )
        if len(self._in_flight) >= self._parts_in_flight:
            self._parts.append(await self._in_flight.pop(0))

    async def finish(self) -> None:
        """Verify size and digest; only then does the blob become visible."""
        spec = self._spec
        if self._received != spec.size_bytes:
            raise InvalidArgument(
                "spec.size_bytes",
                f"declared {spec.size_bytes} bytes for {spec.path!r} but {self._received} arrived",
                reason="SIZE_MISMATCH",
            )
        digest = self._hasher.hexdigest()
        if digest != spec.sha256:
            raise InvalidArgument(
                "spec.sha256",
                f"declared {spec.sha256} for {spec.path!r} but the received bytes hash to {digest}",
                reason="DIGEST_MISMATCH",
            )
        if not self._multipart:
            await self._store.put(spec.sha256, self._take(self._buffered), spec.content_type)
            return
        if self._buffered:
            await self._send_part(self._take(self._buffered))
        while self._in_flight:
            self._parts.append(await self._in_flight.pop(0))
        await self._store.complete_multipart(spec.sha256, self._upload_id, self._parts)
        self._upload_id = ""

    async def abort(self) -> None:
        """Drop everything received; an incomplete multipart upload never becomes an object."""
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        self._buffer.clear()
        if self._upload_id:
            upload_id, self._upload_id = self._upload_id, ""
            await self._store.abort_multipart(self._spec.sha256, upload_id)
