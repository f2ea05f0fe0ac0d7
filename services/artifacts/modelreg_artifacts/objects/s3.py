"""The object store on an S3-compatible server, through the `minio` SDK.

The SDK is synchronous, so every call runs in a bounded thread pool, never on the event loop.
Its public API serves reads, deletes and the bucket; writes go through `minio_adapter`, the one
module that uses the SDK's private methods (pinned exactly, with a test of that surface).

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
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error
from modelreg_api.errors import Unavailable
from modelreg_common.config import S3Settings
from modelreg_common.observability.metrics import (
    OBJECT_STORAGE,
    OTHER,
    STORE_ERRORS,
    TIMEOUT,
    UNAVAILABLE,
    UNREACHABLE,
)
from modelreg_common.observability.tracing import store_span

from modelreg_artifacts.objects import OBJECT_PREFIX, PendingMultipart
from modelreg_artifacts.objects.minio_adapter import (
    CrcCheckedMinio,
    abort_multipart_upload,
    complete_multipart_upload,
    crc32c_header,
    create_multipart_upload,
    list_multipart_uploads,
    put_object,
    upload_part,
)

T = TypeVar("T")

_UNTRACED = contextlib.nullcontext()


def _s3_span(operation: str, bucket: str) -> contextlib.AbstractContextManager[None]:
    """The span of an S3 request in a traced call; work that is not a request gets none."""
    if not operation:
        return _UNTRACED
    return store_span(
        f"S3.{operation}",
        {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": operation, "aws.s3.bucket": bucket},
    )


_MISSING_CODES = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")
_NO_UPLOAD_CODES = ("NoSuchUpload",)
_UNAVAILABLE_CODES = ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout")
_HASH_READ_BYTES = 1024 * 1024


class S3ObjectReader:
    """An open ranged GET; `read` returns b"" at the end."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response

    def read(self, size: int) -> bytes:
        return self._response.read(size)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class S3ObjectStore:
    """`ObjectStore` on one bucket; `ensure_bucket` creates it when it is missing."""

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
        self._client = (CrcCheckedMinio if self._crc_checked else Minio)(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=pool,
        )

    async def run(self, function: Callable[..., T], *args: Any, operation: str = "") -> T:
        """Run blocking work (SDK calls, hashing) on the shared bounded pool.

        An object store that cannot be reached or answers 5xx is UNAVAILABLE to our callers
        (retry later), not an internal error of ours; either is counted in the store errors. An
        S3 request names its `operation` (its S3 API name): a traced call gets a span for it.
        """
        with _s3_span(operation, self.bucket):
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
            except urllib3.exceptions.HTTPError as exc:
                timeout = isinstance(exc, urllib3.exceptions.TimeoutError)
                STORE_ERRORS.labels(OBJECT_STORAGE, TIMEOUT if timeout else UNREACHABLE).inc()
                raise Unavailable(f"object storage is unreachable: {exc}") from exc
            except S3Error as exc:
                if exc.code in _UNAVAILABLE_CODES:
                    STORE_ERRORS.labels(OBJECT_STORAGE, UNAVAILABLE).inc()
                    raise Unavailable(f"object storage is unavailable: {exc.code}") from exc
                if exc.code not in _MISSING_CODES + _NO_UPLOAD_CODES:  # those are answers, not failures
                    STORE_ERRORS.labels(OBJECT_STORAGE, OTHER).inc()
                raise

    async def ensure_bucket(self) -> None:
        if not await self.run(self._client.bucket_exists, self.bucket, operation="HeadBucket"):
            try:
                await self.run(self._client.make_bucket, self.bucket, operation="CreateBucket")
            except S3Error as exc:  # another replica created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def size_of(self, key: str) -> int | None:
        """Size of the stored object, or None when there is none."""
        try:
            stat = await self.run(self._client.stat_object, self.bucket, key, operation="HeadObject")
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
            put_object(self._client, self.bucket, key, data, headers)

        await self.run(put, operation="PutObject")

    async def start_multipart(self, key: str, content_type: str) -> str:
        content_type = content_type or "application/octet-stream"
        return await self.run(
            create_multipart_upload,
            self._client,
            self.bucket,
            key,
            content_type,
            operation="CreateMultipartUpload",
        )

    async def upload_part(
        self, key: str, multipart_id: str, number: int, data: bytes | bytearray | memoryview, *, crc32c: int
    ) -> str:
        """Store one part (`crc32c` is its CRC32C); returns its ETag, which completion checks."""

        def upload() -> str:
            return upload_part(
                self._client,
                self.bucket,
                key,
                upload_id=multipart_id,
                number=number,
                data=data,
                headers=self._checksum(crc32c),
            )

        return await self.run(upload, operation="UploadPart")

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[tuple[int, str]]) -> bool:
        """Complete the upload; False when it no longer exists (completed or aborted before)."""
        try:
            await self.run(
                complete_multipart_upload,
                self._client,
                self.bucket,
                key,
                multipart_id,
                parts,
                operation="CompleteMultipartUpload",
            )
        except S3Error as exc:
            if exc.code in _NO_UPLOAD_CODES:
                return False
            raise
        return True

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            await self.run(
                abort_multipart_upload,
                self._client,
                self.bucket,
                key,
                multipart_id,
                operation="AbortMultipartUpload",
            )
        except S3Error as exc:
            if exc.code not in _NO_UPLOAD_CODES:
                raise

    async def pending_multiparts(self) -> list[PendingMultipart]:
        """Incomplete multipart uploads under our prefix (to abort the ones nobody tracks)."""
        return await self.run(
            list_multipart_uploads, self._client, self.bucket, OBJECT_PREFIX, operation="ListMultipartUploads"
        )

    async def delete(self, key: str) -> None:
        await self.run(self._client.remove_object, self.bucket, key, operation="DeleteObject")

    async def open(self, key: str, offset: int, length: int) -> S3ObjectReader:
        response = await self.run(
            self._client.get_object, self.bucket, key, offset, length, operation="GetObject"
        )
        return S3ObjectReader(response)

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

        return await self.run(read_and_hash, operation="GetObject")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _pieces(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    while piece := response.read(_HASH_READ_BYTES):
        yield piece


class BucketProbe:
    """The health probe of the object store: does the bucket answer (modelreg_common/store_health.py)?

    A client of its own, with short timeouts and no retries, on a thread of its own: a probe stuck
    on a hung server must neither wait minutes (the data client allows 300 s reads and retries) nor
    take a thread from the pool the calls use. While one probe still hangs, the next counts as failed.
    """

    def __init__(self, settings: S3Settings, timeout: float = 1.0):
        self.bucket = settings.bucket
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-probe")
        self._pending: Future[bool] | None = None
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=urllib3.PoolManager(
                num_pools=1, maxsize=1, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False
            ),
        )

    async def check(self) -> None:
        """Return when the bucket exists and answers; raise otherwise."""
        if self._pending is not None and not self._pending.done():
            raise TimeoutError("the previous object storage probe has not returned")
        self._pending = self._executor.submit(self._client.bucket_exists, self.bucket)
        if not await asyncio.wrap_future(self._pending):
            raise LookupError(f"bucket {self.bucket!r} is missing")

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
