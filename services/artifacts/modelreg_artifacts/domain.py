"""What the artifact service reasons about: declared uploads and the rules they must satisfy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelreg.names import AliasName, ModelVersionName, check_file_path
from modelreg_common.errors import InvalidArgument

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 5 * 1024**4  # 5 TiB: S3's object size limit
MAX_CONTENT_TYPE_CHARS = 255


@dataclass(frozen=True)
class UploadSpec:
    model_version: ModelVersionName
    path: str
    size_bytes: int
    sha256: str
    content_type: str


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
