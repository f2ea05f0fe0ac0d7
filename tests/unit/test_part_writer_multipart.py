"""A stream cut while its session records the multipart upload must not abort that upload.

Seen in the three-language conformance test under load: the cut stream's task was cancelled
while `set_multipart_id` was in flight, the write landed, the cancelled stream aborted the
multipart upload anyway, and every later stream of the session failed with S3's NoSuchUpload
(INTERNAL). The writer now aborts an upload only when the store refused to record it; when the
outcome is unknown it keeps it (the sweeper aborts uploads no session names).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from modelreg_api.errors import Aborted
from modelreg_api.names import ModelVersionName
from modelreg_artifacts.domain import UploadSession, UploadSpec, UploadState
from modelreg_artifacts.hashing import LiveHashes
from modelreg_artifacts.part_writer import PartWriter

T = TypeVar("T")
PART = 64 * 1024


class Objects:
    """Object storage that records what is started and aborted."""

    def __init__(self) -> None:
        self.aborted: list[str] = []
        self.parts: list[tuple[str, int]] = []

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    async def start_multipart(self, key: str, content_type: str) -> str:
        return "multipart-1"

    async def upload_part(self, key: str, multipart_id: str, number: int, data: Any, *, crc32c: int) -> str:
        self.parts.append((multipart_id, number))
        return f"etag-{number}"

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        self.aborted.append(multipart_id)


class Sessions:
    """The session record; `set_multipart_id` is in flight until `landed` is set, and its write
    lands then, after the stream was cancelled (or is refused: another stream took it over)."""

    def __init__(self, session: UploadSession, *, taken_over: bool = False) -> None:
        self.record = session
        self.taken_over = taken_over
        self.sent = asyncio.Event()

    async def get(self, upload_id: str) -> UploadSession:
        return self.record

    async def set_multipart_id(self, session: UploadSession, multipart_id: str) -> UploadSession:
        if self.taken_over:
            raise Aborted("taken over by another stream", reason="UPLOAD_TAKEN_OVER")
        self.sent.set()
        try:
            await asyncio.Event().wait()  # the write is on its way to the database
        finally:
            # The database applies it although nobody waits for the answer any more.
            self.record = replace(self.record, multipart_id=multipart_id)
        return self.record


def _session() -> UploadSession:
    moment = datetime.now(UTC)
    spec = UploadSpec(ModelVersionName("team", "model", 1), "weights.bin", 4 * PART, "0" * 64, "x")
    return UploadSession(
        id="u1",
        spec=spec,
        state=UploadState.ACTIVE,
        committed_size=0,
        part_bytes=PART,
        writer_epoch=1,
        create_time=moment,
        update_time=moment,
        expire_time=moment + timedelta(hours=1),
    )


def _writer(objects: Objects, sessions: Sessions) -> PartWriter:
    return PartWriter(
        objects,  # type: ignore[arg-type]  # the two calls the writer makes of each
        sessions,  # type: ignore[arg-type]
        LiveHashes(),
        sessions.record,
        hasher=hashlib.sha256(),
        parts_in_flight=2,
    )


async def test_a_stream_cut_while_the_multipart_id_is_recorded_keeps_the_upload() -> None:
    objects, sessions = Objects(), Sessions(_session())
    writer = _writer(objects, sessions)
    stream = asyncio.ensure_future(writer.write(0, b"x" * PART))  # one full part: starts the upload
    await sessions.sent.wait()
    stream.cancel()  # the client's connection was reset: gRPC cancels the handler
    with pytest.raises(asyncio.CancelledError):
        await stream
    await asyncio.sleep(0)  # let a shielded clean-up, if any, run
    assert sessions.record.multipart_id == "multipart-1"
    assert objects.aborted == [], "the upload the session names was aborted: the next stream would fail"


async def test_an_upload_the_session_could_not_record_is_aborted() -> None:
    objects, sessions = Objects(), Sessions(_session(), taken_over=True)
    writer = _writer(objects, sessions)
    with pytest.raises(Aborted):
        await writer.write(0, b"x" * PART)
    assert sessions.record.multipart_id == ""
    assert objects.aborted == ["multipart-1"]
