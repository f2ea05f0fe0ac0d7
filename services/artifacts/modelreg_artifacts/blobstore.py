"""Objects in an S3-compatible bucket, through the `minio` SDK.

Every key is `blobs/<upload id>`: a UUID chosen by the service, never user text. Which object
holds which digest is the blob index's business (`store.blobs`), so an object is written once
and never overwritten, and an object becomes a blob only after its bytes were verified. The
SDK is synchronous, so every call runs in a bounded thread pool, never on the event loop.

Every byte sent to S3 carries a checksum that the server verifies (it answers BadDigest and
stores nothing otherwise). The SDK's own choice costs a full hash of the payload on our side:
over http it signs the payload's SHA-256 (1.1 GB/s here, as much CPU as our own verification
hash, about a quarter of the service's CPU per uploaded byte), over https it sends Content-MD5
(0.7 GB/s). Parts and objects we write send `x-amz-checksum-crc32c` instead, with an unsigned
payload (the request itself stays signed); SeaweedFS, MinIO and AWS S3 check it. The caller
computes the CRC32C as the bytes arrive (`part_writer`), at about 6 GB/s and without a copy.
MODELREG_S3_PAYLOAD_CHECKSUM=sha256 restores the SDK's behaviour for a server without it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.datatypes import Part
from minio.error import S3Error
from modelreg_api.errors import Unavailable
from modelreg_common.config import S3Settings

T = TypeVar("T")

OBJECT_PREFIX = "blobs/"
_MISSING_CODES = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")
_NO_UPLOAD_CODES = ("NoSuchUpload",)
_UNAVAILABLE_CODES = ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout")
_HASH_READ_BYTES = 1024 * 1024


CRC32C_HEADER = "x-amz-checksum-crc32c"


def crc32c_header(crc32c: int) -> dict[str, str]:
    return {CRC32C_HEADER: base64.b64encode(crc32c.to_bytes(4, "big")).decode()}


class _CrcCheckedMinio(Minio):
    """The SDK, except that a request carrying a CRC32C checksum is not hashed again to be sent.

    `_build_headers` is where minio 7.2 (pinned in uv.lock) hashes the body: with no body it
    hashes nothing, so the body's length and the unsigned-payload marker are set here instead.
    """

    def _build_headers(
        self,
        host: str,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
        creds: Credentials | None = None,
    ) -> tuple[dict[str, Any], datetime]:
        if not headers or CRC32C_HEADER not in headers:
            return super()._build_headers(host, headers, body, creds)
        built, date = super()._build_headers(host, headers, None, creds)
        if body:
            built["Content-Length"] = str(len(body))
        if creds:
            built["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        return built, date


def object_key(upload_id: str) -> str:
    return f"{OBJECT_PREFIX}{upload_id}"


class BlobReader:
    """An open ranged GET; `read` returns b"" at the end."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response

    def read(self, size: int) -> bytes:
        return self._response.read(size)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


@dataclass(frozen=True)
class PendingMultipart:
    key: str
    multipart_id: str
    initiated: datetime | None


class S3BlobStore:
    def __init__(self, settings: S3Settings, threads: int):
        self.bucket = settings.bucket
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3")
        pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=threads,
            timeout=urllib3.Timeout(connect=10, read=300),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._crc_checked = settings.payload_checksum == "crc32c"
        self._client = (_CrcCheckedMinio if self._crc_checked else Minio)(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=pool,
        )

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking work (SDK calls, hashing) on the shared bounded pool.

        An object store that cannot be reached or answers 5xx is UNAVAILABLE to our callers
        (retry later), not an internal error of ours.
        """
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"object storage is unreachable: {exc}") from exc
        except S3Error as exc:
            if exc.code in _UNAVAILABLE_CODES:
                raise Unavailable(f"object storage is unavailable: {exc.code}") from exc
            raise

    async def ensure_bucket(self) -> None:
        if not await self.run(self._client.bucket_exists, self.bucket):
            try:
                await self.run(self._client.make_bucket, self.bucket)
            except S3Error as exc:  # another replica created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def size_of(self, key: str) -> int | None:
        """Size of the stored object, or None when there is none."""
        try:
            stat = await self.run(self._client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                return None
            raise
        return int(stat.size or 0)

    def _checksum(self, crc32c: int) -> dict[str, str]:
        return crc32c_header(crc32c) if self._crc_checked else {}

    async def put(
        self, key: str, data: bytes | bytearray | memoryview, content_type: str, *, crc32c: int
    ) -> None:
        """Store a whole object; `crc32c` is the CRC32C of `data`, which the server checks."""

        def put() -> None:
            headers = {"Content-Type": content_type or "application/octet-stream", **self._checksum(crc32c)}
            self._client._put_object(self.bucket, key, data, headers)  # type: ignore[arg-type]

        await self.run(put)

    async def start_multipart(self, key: str, content_type: str) -> str:
        headers = {"Content-Type": content_type or "application/octet-stream"}
        return await self.run(self._client._create_multipart_upload, self.bucket, key, headers)

    async def upload_part(
        self, key: str, multipart_id: str, number: int, data: bytes | bytearray | memoryview, *, crc32c: int
    ) -> str:
        """Store one part (`crc32c` is its CRC32C); returns its ETag, which completion checks."""

        def upload() -> str:
            headers = self._checksum(crc32c)
            return self._client._upload_part(self.bucket, key, data, headers, multipart_id, number)  # type: ignore[arg-type]

        return await self.run(upload)

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[tuple[int, str]]) -> bool:
        """Complete the upload; False when it no longer exists (completed or aborted before)."""
        try:
            await self.run(
                self._client._complete_multipart_upload,
                self.bucket,
                key,
                multipart_id,
                [Part(number, etag) for number, etag in parts],
            )
        except S3Error as exc:
            if exc.code in _NO_UPLOAD_CODES:
                return False
            raise
        return True

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            await self.run(self._client._abort_multipart_upload, self.bucket, key, multipart_id)
        except S3Error as exc:
            if exc.code not in _NO_UPLOAD_CODES:
                raise

    async def pending_multiparts(self) -> list[PendingMultipart]:
        """Incomplete multipart uploads under our prefix (to abort the ones nobody tracks)."""

        def listing() -> list[PendingMultipart]:
            found: list[PendingMultipart] = []
            key_marker: str | None = None
            id_marker: str | None = None
            while True:
                result = self._client._list_multipart_uploads(
                    self.bucket, prefix=OBJECT_PREFIX, key_marker=key_marker, upload_id_marker=id_marker
                )
                found.extend(
                    PendingMultipart(u.object_name, u.upload_id or "", u.initiated_time)
                    for u in result.uploads
                )
                if not result.is_truncated:
                    return found
                key_marker, id_marker = result.next_key_marker, result.next_upload_id_marker

        return await self.run(listing)

    async def delete(self, key: str) -> None:
        await self.run(self._client.remove_object, self.bucket, key)

    async def open(self, key: str, offset: int, length: int) -> BlobReader:
        response = await self.run(self._client.get_object, self.bucket, key, offset, length)
        return BlobReader(response)

    async def digest_of(self, key: str) -> tuple[int, str] | None:
        """Size and SHA-256 of a stored object, read back in full; None when it is missing."""

        def read_and_hash() -> tuple[int, str] | None:
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return None
                raise
            hasher, size = hashlib.sha256(), 0
            try:
                for piece in _pieces(response):
                    hasher.update(piece)
                    size += len(piece)
            finally:
                response.close()
                response.release_conn()
            return size, hasher.hexdigest()

        return await self.run(read_and_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _pieces(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    while piece := response.read(_HASH_READ_BYTES):
        yield piece
