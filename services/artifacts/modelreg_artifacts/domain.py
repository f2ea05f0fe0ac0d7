"""What the artifact service reasons about: declared uploads, sessions, blobs and their rules."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from modelreg_api import manifests
from modelreg_api.errors import FailedPrecondition, InvalidArgument
from modelreg_api.names import AliasName, ModelVersionName, UploadSessionName, check_file_path

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 5 * 1024**4  # 5 TiB: S3's object size limit
MAX_CONTENT_TYPE_CHARS = 255


def now() -> datetime:
    # MongoDB stores milliseconds; truncating here keeps what we return equal to what we read back.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class UploadSpec:
    model_version: ModelVersionName
    path: str
    size_bytes: int
    sha256: str
    content_type: str
    # The client means to replace other content at `path` (modelreg_api.manifests).
    replace_existing: bool = False


@dataclass(frozen=True)
class StoredFile:
    path: str
    size_bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class DownloadRequest:
    version: ModelVersionName | AliasName
    path: str
    offset: int
    limit: int


def check_upload_spec(spec: UploadSpec) -> UploadSpec:
    check_file_path(spec.path, "spec.path")
    if not 0 <= spec.size_bytes <= MAX_FILE_BYTES:
        raise InvalidArgument(
            "spec.size_bytes", f"must be between 0 and {MAX_FILE_BYTES}, got {spec.size_bytes}"
        )
    if not SHA256_HEX.fullmatch(spec.sha256):
        raise InvalidArgument(
            "spec.sha256", "must be 64 lowercase hex characters (the SHA-256 of the content)"
        )
    if len(spec.content_type) > MAX_CONTENT_TYPE_CHARS or not spec.content_type.isprintable():
        raise InvalidArgument(
            "spec.content_type", f"must be printable and at most {MAX_CONTENT_TYPE_CHARS} chars"
        )
    return spec


def check_download(request: DownloadRequest) -> DownloadRequest:
    check_file_path(request.path, "path")
    if request.offset < 0:
        raise InvalidArgument("offset", f"must not be negative, got {request.offset}")
    if request.limit < 0:
        raise InvalidArgument("limit", f"must not be negative, got {request.limit}")
    return request


# S3 multipart limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 parts.
S3_MAX_PARTS = 10_000
S3_MIN_PART_BYTES = 5 * 1024**2
S3_MAX_PART_BYTES = 5 * 1024**3
_PART_ALIGNMENT = 1024**2


def part_size_for(size_bytes: int, preferred: int) -> int:
    """The part size for a file: the preferred one, grown only when the file would need more parts.

    With 16 MiB parts a file of up to 156 GiB fits in 10,000 parts; a 1 TiB file gets 105 MiB
    parts and the 5 TiB maximum 525 MiB ones (memory per upload grows with the part size then).
    """
    needed = -(-size_bytes // S3_MAX_PARTS)
    aligned = -(-needed // _PART_ALIGNMENT) * _PART_ALIGNMENT
    return min(max(preferred, aligned, S3_MIN_PART_BYTES), S3_MAX_PART_BYTES)


class UploadState(enum.Enum):
    ACTIVE = "ACTIVE"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class StoredPart:
    """A multipart part that object storage acknowledged and the session recorded."""

    number: int
    etag: str
    size_bytes: int


@dataclass(frozen=True)
class UploadSession:
    """A resumable upload of one file; persisted, so any replica can continue it.

    `writer_epoch` grows each time a stream takes the session over: only the newest stream may
    record parts or finish, so a stream left behind on another replica cannot interfere.
    """

    id: str
    spec: UploadSpec
    state: UploadState
    committed_size: int
    part_bytes: int
    writer_epoch: int
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    multipart_id: str = ""
    parts: tuple[StoredPart, ...] = ()
    blob_reused: bool = False
    failure_reason: str = ""
    failure_message: str = ""
    # False for a one-shot upload of a single-part file: nothing to resume, nothing to clean
    # up after a crash, so it is never written to the database (two writes fewer per file).
    persisted: bool = True
    # Not stored: computed when the session is started or read. The id of an older ACTIVE
    # session that is uploading the same content right now, while no blob has it yet; the
    # client waits for it instead of sending the same bytes (see `Uploads.start`).
    concurrent_upload: str = ""

    @property
    def name(self) -> UploadSessionName:
        return UploadSessionName(self.id)

    @property
    def multipart(self) -> bool:
        """Files larger than one part go through an S3 multipart upload; smaller ones are one PUT."""
        return self.spec.size_bytes > self.part_bytes

    def state_at(self, moment: datetime) -> UploadState:
        if self.state is UploadState.ACTIVE and moment >= self.expire_time:
            return UploadState.EXPIRED
        return self.state

    @property
    def file(self) -> StoredFile:
        spec = self.spec
        return StoredFile(spec.path, spec.size_bytes, spec.sha256, spec.content_type)


def refuse_unless_active(session: UploadSession, moment: datetime) -> None:
    """The precise error for writing to a session that no longer accepts bytes."""
    state = session.state_at(moment)
    if state is UploadState.ACTIVE:
        return
    detail = {
        UploadState.FINISHED: "is already finished; its file is recorded",
        UploadState.FAILED: f"failed ({session.failure_reason}: {session.failure_message}); start a new one",
        UploadState.CANCELLED: "was cancelled; start a new one",
        UploadState.EXPIRED: f"expired at {session.expire_time.isoformat()}; start a new one",
    }[state]
    raise FailedPrecondition(f"upload session {session.name} {detail}", reason=f"UPLOAD_{state.value}")


def new_upload_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class BlobRecord:
    """A verified blob: the only way a digest becomes visible (see `modelreg_artifacts.uploads`).

    `claim_time` moves forward whenever an upload relies on the blob; the garbage collector only
    deletes blobs unclaimed for its whole grace period, and only by compare-and-set on it.
    """

    sha256: str
    size_bytes: int
    object_key: str
    create_time: datetime
    claim_time: datetime


MAX_DIGESTS_PER_CALL = 1000


def check_digests(digests: list[str], field: str = "sha256s") -> list[str]:
    if len(digests) > MAX_DIGESTS_PER_CALL:
        raise InvalidArgument(field, f"has {len(digests)} digests; at most {MAX_DIGESTS_PER_CALL} per call")
    for digest in digests:
        if not SHA256_HEX.fullmatch(digest):
            raise InvalidArgument(field, f"{digest[:80]!r} is not 64 lowercase hex characters")
    return digests


def check_manifest_entry(manifest: dict[str, str], spec: UploadSpec) -> None:
    """Refuses an upload the manifest (path -> sha256) would refuse at its end, before any bytes
    arrive (modelreg_api.manifests). The metadata service checks again inside its write: this is
    an early answer, not the guard."""
    present = manifest.get(spec.path)
    if present is None:
        manifests.check_path(manifests.ManifestPaths(manifest), spec.path, str(spec.model_version))
    elif present != spec.sha256 and not spec.replace_existing:
        raise manifests.file_exists(spec.path, present, spec.sha256, str(spec.model_version))
