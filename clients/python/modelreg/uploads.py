"""The upload protocol: the one module that knows how bytes of a file reach the artifact service.

Three ways, cheapest first:

- **Known content** (`FindMissingBlobs` says the registry stores these bytes, in any model or
  version): `StartUpload` records the file at once and returns a FINISHED session. No byte is
  sent.
- **Large files** (at least `RESUMABLE_MIN_BYTES`): a resumable upload session. `StartUpload`
  returns `uploads/{id}`, which is written to the upload journal in the cache directory, keyed by
  version, path and SHA-256; `WriteUpload` streams the bytes from the session's
  `committed_size`. After a broken stream the client asks `GetUploadSession` where to continue;
  after a killed process, the next push finds the session in the journal and does the same. The
  server commits each whole part (5 MiB or more) as soon as object storage has it, so after a
  break only the parts in flight and the unfinished one are sent again. While another session
  uploads the same content (`UploadSession.concurrent_upload`), the client waits for its blob
  instead of sending the bytes a second time.
- **Small files**: `UploadFile`, one stream, no session to remember. A file smaller than the
  service's smallest part could not resume mid-file anyway.

The service hashes everything it receives and adds the file to the version only when size and
SHA-256 match; the client never has to be trusted about the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import grpc
from modelreg_api import headers, wire
from modelreg_api.names import ModelVersionName
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import model_pb2

from modelreg.connection import Connection
from modelreg.errors import (
    FailedPrecondition,
    InvalidArgument,
    ModelregError,
    NotFound,
    Unavailable,
    from_rpc_error,
)
from modelreg.journal import Journal
from modelreg.local_files import LocalFile
from modelreg.progress import Outcome, TransferProgress
from modelreg.retries import with_retries

# S3's smallest multipart part, so the service's part size is never below it: a smaller file is
# always one part, and a part is the unit the service commits.
RESUMABLE_MIN_BYTES = 5 * 1024 * 1024
# The service's bounds for a data message (docs/artifact-protocol.md): at most 2 MiB, and at
# least 64 KiB except for the file's last bytes. `ClientSettings.chunk_bytes` is kept inside them.
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 2 * 1024 * 1024
# Waiting for another upload of the same content (`UploadSession.concurrent_upload`): the first
# and the longest pause between two looks at it.
_WAIT_FIRST_SECONDS = 0.2
_WAIT_MAX_SECONDS = 2.0
# FindMissingBlobs takes at most this many digests per call.
_DIGESTS_PER_CALL = 1000
# The first message of either upload stream; the last is of the same type.
_Request = TypeVar("_Request", art.WriteUploadRequest, art.UploadFileRequest)


@dataclass(frozen=True, slots=True)
class UploadReport:
    file: model_pb2.ModelFile
    outcome: Outcome
    # Bytes of the file sent by this call (re-sent bytes after a broken stream included).
    sent_bytes: int
    # `uploads/{id}` when the bytes went through a resumable session.
    session: str = ""
    # Bytes of the file the registry held before this call sent any: all of them when the
    # content was already stored (or another upload stored it meanwhile), else what an earlier
    # upload session had committed.
    skipped_bytes: int = 0
    # Broken streams that were continued from the service's `committed_size`.
    resumed_streams: int = 0


def upload_key(version: ModelVersionName, file: LocalFile) -> str:
    """The upload journal's key for a file: its version, path and content."""
    return hashlib.sha256(f"{version}\0{file.path}\0{file.sha256}".encode()).hexdigest()


class Uploader:
    def __init__(self, connection: Connection, journal: Journal) -> None:
        self._connection = connection
        self._settings = connection.settings
        # Which upload session holds the committed bytes of a file (keyed by `upload_key`).
        self._journal = journal

    async def stored_blobs(self, version: ModelVersionName, digests: Iterable[str]) -> set[str]:
        """Which of the digests the registry already stores (in any model or version).

        Asked for the version about to receive the files: the call needs the right to upload to it.
        """
        wanted = list(dict.fromkeys(digests))
        stored: set[str] = set()
        for start in range(0, len(wanted), _DIGESTS_PER_CALL):
            batch = wanted[start : start + _DIGESTS_PER_CALL]
            response = await self._connection.unary(
                self._connection.artifacts.FindMissingBlobs,
                art.FindMissingBlobsRequest(sha256s=batch, model_version=str(version)),
            )
            stored.update(set(batch) - set(response.missing_sha256s))
        return stored

    async def upload(
        self,
        version: ModelVersionName,
        file: LocalFile,
        progress: TransferProgress,
        *,
        stored: bool,
        replace: bool = False,
    ) -> UploadReport:
        """Store `file` in the PENDING `version`; reports its manifest entry once verified.

        `stored`: the registry holds these bytes already (from `stored_blobs`). `replace`: other
        content the version holds at the file's path is replaced (else `AlreadyExists`, reason
        FILE_EXISTS).
        """
        if stored:
            session = await self._start(version, file, replace)
            if session.state == art.UPLOAD_STATE_FINISHED:
                progress.advance(file.size_bytes)
                return UploadReport(session.file, Outcome.DEDUPLICATED, 0, session.name, file.size_bytes)
            # The blob was collected in between: send the bytes after all.
            self._remember(version, file, session)
            session = await self._after_concurrent_uploads(version, file, session, replace)
            return await self._write_session(version, file, session, progress)
        if file.size_bytes < RESUMABLE_MIN_BYTES:
            return await self._upload_whole(version, file, progress, replace)
        session = await self._resumable_session(version, file, replace)
        session = await self._after_concurrent_uploads(version, file, session, replace)
        return await self._write_session(version, file, session, progress)

    async def _after_concurrent_uploads(
        self, version: ModelVersionName, file: LocalFile, session: art.UploadSession, replace: bool
    ) -> art.UploadSession:
        """Wait while another session uploads the same content, then reuse its blob.

        Concurrent pushes of one file (into several models) thus send its bytes about once. The
        service names the other session only while it makes progress and has not stored the
        blob: when it stalls or fails, this session sends the bytes itself; nobody waits forever.
        Returns the session to write (ACTIVE), or a FINISHED one that reused the stored blob.
        """
        delay = _WAIT_FIRST_SECONDS
        while session.state == art.UPLOAD_STATE_ACTIVE and session.concurrent_upload:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _WAIT_MAX_SECONDS)
            session = await self._session(session.name)
            if session.concurrent_upload or session.state != art.UPLOAD_STATE_ACTIVE:
                continue
            if file.sha256 not in await self.stored_blobs(version, [file.sha256]):
                return session  # the other upload stalled or failed: send the bytes ourselves
            # Stored by the other upload: record the file from its blob, drop the waiting session.
            await self._cancel_quietly(session.name)
            self.forget(version, file)
            session = await self._start(version, file, replace)
            if session.state != art.UPLOAD_STATE_FINISHED:  # collected meanwhile (rare)
                self._remember(version, file, session)
        return session

    async def _cancel_quietly(self, name: str) -> None:
        with contextlib.suppress(FailedPrecondition, NotFound):  # ended already: nothing to free
            await self._connection.unary(
                self._connection.artifacts.CancelUploadSession, art.CancelUploadSessionRequest(name=name)
            )

    def _spec(self, version: ModelVersionName, file: LocalFile, replace: bool) -> art.UploadSpec:
        return art.UploadSpec(
            model_version=str(version),
            path=file.path,
            size_bytes=file.size_bytes,
            sha256=file.sha256,
            content_type=file.content_type,
            replace_existing=replace,
        )

    async def _start(self, version: ModelVersionName, file: LocalFile, replace: bool) -> art.UploadSession:
        request = art.StartUploadRequest(spec=self._spec(version, file, replace))
        return await self._connection.unary(self._connection.artifacts.StartUpload, request)

    async def _resumable_session(
        self, version: ModelVersionName, file: LocalFile, replace: bool
    ) -> art.UploadSession:
        """The session an interrupted push left for this file, if it can go on; else a new one."""
        record = self._journal.load(upload_key(version, file))
        earlier = str(record.get("session", "")) if record else ""
        if earlier:
            try:
                session = await self._session(earlier)
            except (NotFound, InvalidArgument):
                session = None
            if session is not None and self._continues(session, version, file):
                return session
        session = await self._start(version, file, replace)
        if session.state != art.UPLOAD_STATE_FINISHED:
            self._remember(version, file, session)
        return session

    def _remember(self, version: ModelVersionName, file: LocalFile, session: art.UploadSession) -> None:
        record = {
            "session": session.name,
            "model_version": str(version),
            "path": file.path,
            "sha256": file.sha256,
            "size_bytes": file.size_bytes,
            "source": str(file.source.absolute()),
        }
        self._journal.save(upload_key(version, file), record)

    def forget(self, version: ModelVersionName, file: LocalFile) -> None:
        """Drop the journal's note of the file's upload session: there is nothing left to resume."""
        self._journal.remove(upload_key(version, file))

    @staticmethod
    def _continues(session: art.UploadSession, version: ModelVersionName, file: LocalFile) -> bool:
        spec = session.spec
        same = (spec.model_version, spec.path, spec.sha256, spec.size_bytes) == (
            str(version),
            file.path,
            file.sha256,
            file.size_bytes,
        )
        return same and session.state in (art.UPLOAD_STATE_ACTIVE, art.UPLOAD_STATE_FINISHED)

    async def _session(self, name: str) -> art.UploadSession:
        return await self._connection.unary(
            self._connection.artifacts.GetUploadSession, art.GetUploadSessionRequest(name=name)
        )

    async def _write_session(
        self,
        version: ModelVersionName,
        file: LocalFile,
        session: art.UploadSession,
        progress: TransferProgress,
    ) -> UploadReport:
        """Send the bytes the session lacks, continuing from `committed_size` after any break.

        Progress only moves forward: bytes sent again after a break are counted in `sent_bytes`
        but not reported as progress a second time.
        """
        skipped = session.committed_size  # committed by an earlier push of this file
        reported = 0  # what the progress bar shows as done (the furthest offset reached)
        sent = 0
        resumed_streams = 0
        current = session
        fresh = True  # `current` was just read from the service
        refused_at_start = False  # the last stream was refused before it carried any bytes

        def reach(offset: int) -> None:
            nonlocal reported
            if offset > reported:
                progress.advance(offset - reported)
                reported = offset

        async def attempt() -> art.UploadSession:
            nonlocal current, fresh, resumed_streams, refused_at_start
            if not fresh:  # after a broken stream: where does the service stand now?
                current = await self._session(current.name)
                resumed_streams += 0 if refused_at_start else 1
            fresh, refused_at_start = False, False
            if current.state == art.UPLOAD_STATE_FINISHED:
                return current
            if current.state != art.UPLOAD_STATE_ACTIVE:
                raise _ended(current)
            position = current.committed_size
            reach(position)
            remaining = file.size_bytes - current.committed_size

            def count(nbytes: int) -> None:
                nonlocal sent, position
                sent += nbytes
                position += nbytes
                reach(position)

            try:
                return await self._connection.data.write_upload(
                    self._messages(
                        art.WriteUploadRequest(
                            upload_session=current.name, write_offset=current.committed_size
                        ),
                        file,
                        count,
                    ),
                    timeout=self._settings.stream_timeout(remaining),
                    metadata=self._connection.call_metadata(),
                )
            except grpc.RpcError as exc:
                failure = await self._stream_failure(exc, current.name, file)
                # A stream refused for its offset carried nothing: it does not count as resumed.
                refused_at_start = failure.reason == "WRITE_OFFSET_MISMATCH"
                raise failure from exc

        finished = await with_retries(
            self._settings.retry,
            attempt,
            on_retry=lambda error, delay: progress.retrying(file.path, error.message, delay),
        )
        if finished.state != art.UPLOAD_STATE_FINISHED:
            raise _ended(finished)
        reach(file.size_bytes)
        self.forget(version, file)
        outcome = Outcome.RESUMED if skipped else Outcome.UPLOADED
        if finished.blob_reused and sent == 0:
            outcome, skipped = Outcome.DEDUPLICATED, file.size_bytes
        return UploadReport(finished.file, outcome, sent, finished.name, skipped, resumed_streams)

    async def _stream_failure(self, exc: grpc.RpcError, session: str, file: LocalFile) -> ModelregError:
        """What a failed upload stream means: `Unavailable` to continue from where the service
        stands (retried), or the error that ends the upload."""
        if exc.code() == grpc.StatusCode.INTERNAL:
            # grpc.aio may report INTERNAL instead of the service's status when the service ends
            # the stream while we are still writing (grpc/grpc#36066): the session says why it
            # refused the bytes.
            refused = await self._session(session)
            if refused.state not in (art.UPLOAD_STATE_ACTIVE, art.UPLOAD_STATE_FINISHED):
                return _ended(refused)
            if not _answered_by_service(exc):
                # The stream broke (the service went away or answered UNAVAILABLE while we
                # wrote) and the session is intact: resume it like any broken stream.
                return Unavailable(
                    f"the upload stream of {file.path} broke ({exc.details()}); resuming",
                    reason="STREAM_BROKEN",
                )
        error = from_rpc_error(exc)
        if error.reason == "WRITE_OFFSET_MISMATCH":
            # The service records the parts of a cut stream once S3 has them, which may be after
            # we read the session: it is further on now; continue from there.
            return Unavailable(
                f"the upload of {file.path} is committed further than we read; continuing",
                reason="WRITE_OFFSET_MISMATCH",
            )
        return error

    async def _messages(
        self, first: _Request, file: LocalFile, count: Callable[[int], None]
    ) -> AsyncIterator[_Request | bytes]:
        """One upload stream: `first`, the file's bytes from `first.write_offset`, then `finish_write`.

        Data messages are pre-encoded (`wire.encode_data`), the same for both kinds of stream.
        """
        yield first
        chunk_bytes = min(max(self._settings.chunk_bytes, MIN_CHUNK_BYTES), MAX_CHUNK_BYTES)
        stream = await asyncio.to_thread(_open_at, file.source, first.write_offset)
        try:
            offset = first.write_offset
            # A buffered file's read(n) returns n bytes until the end: no message is short but the last.
            while data := await asyncio.to_thread(stream.read, chunk_bytes):
                yield wire.encode_data(offset, data)
                offset += len(data)
                count(len(data))
            yield type(first)(write_offset=offset, finish_write=True)
        finally:
            await asyncio.to_thread(stream.close)

    async def _upload_whole(
        self, version: ModelVersionName, file: LocalFile, progress: TransferProgress, replace: bool
    ) -> UploadReport:
        """One `UploadFile` stream; a retry sends the whole (small) file again."""
        metadata = self._connection.call_metadata()
        timeout = self._settings.stream_timeout(file.size_bytes)
        sent = 0
        reported = 0  # progress moves forward only: a retry's bytes are not reported twice
        attempt_sent = 0

        def count(nbytes: int) -> None:
            nonlocal sent, attempt_sent, reported
            sent += nbytes
            attempt_sent += nbytes
            if attempt_sent > reported:
                progress.advance(attempt_sent - reported)
                reported = attempt_sent

        async def attempt() -> model_pb2.ModelFile:
            nonlocal attempt_sent
            attempt_sent = 0
            try:
                return await self._connection.data.upload_file(
                    self._messages(
                        art.UploadFileRequest(spec=self._spec(version, file, replace)), file, count
                    ),
                    timeout=timeout,
                    metadata=metadata,
                )
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

        stored = await with_retries(
            self._settings.retry,
            attempt,
            on_retry=lambda error, delay: progress.retrying(file.path, error.message, delay),
        )
        return UploadReport(stored, Outcome.UPLOADED, sent)


def _open_at(source: Path, offset: int) -> BinaryIO:
    stream = source.open("rb")
    stream.seek(offset)
    return stream


def _ended(session: art.UploadSession) -> FailedPrecondition:
    state = art.UploadState.Name(session.state).removeprefix("UPLOAD_STATE_")
    reason = session.failure_reason or f"UPLOAD_{state}"
    detail = f": {session.failure_message}" if session.failure_message else ""
    return FailedPrecondition(
        f"upload session {session.name} of {session.spec.path!r} is {state}{detail}; "
        "push again to start over",
        reason=reason,
    )


def _answered_by_service(error: grpc.RpcError) -> bool:
    """Whether a status came from the service (it names the request in every answer) rather than
    from this process's gRPC core (a stream it could not finish)."""
    if not isinstance(error, grpc.aio.AioRpcError):
        return True
    trailers: Any = error.trailing_metadata()  # grpc.aio.Metadata at run time (the stubs say a tuple)
    return trailers is not None and headers.REQUEST_ID in trailers
