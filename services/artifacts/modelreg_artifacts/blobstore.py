"""Content-addressed blobs in an S3-compatible bucket, through the `minio` SDK.

Keys are `blobs/sha256/<hex>`: they come from verified digests, never from user text, and the
same content is stored once whatever model or version it belongs to. The SDK is synchronous, so
every call runs in a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error

from modelreg_artifacts.config import S3Settings

T = TypeVar("T")

_MISSING_CODES = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")


def blob_key(sha256: str) -> str:
    return f"blobs/sha256/{sha256}"


class BlobReader:
    """An open ranged GET; `read` returns b"" at the end."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response

    def read(self, size: int) -> bytes:
        return self._response.read(size)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


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
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=pool,
        )

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking work (SDK calls, hashing) on the shared bounded pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def ensure_bucket(self) -> None:
        if not await self.run(self._client.bucket_exists, self.bucket):
            try:
                await self.run(self._client.make_bucket, self.bucket)
            except S3Error as exc:  # another replica created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def size_of(self, sha256: str) -> int | None:
        """Size of the stored blob, or None when it is not stored."""
        try:
            stat = await self.run(self._client.stat_object, self.bucket, blob_key(sha256))
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                return None
            raise
        return int(stat.size or 0)

    async def put(self, sha256: str, data: bytes, content_type: str) -> None:
        await self.run(
            lambda: self._client.put_object(
                self.bucket, blob_key(sha256), io.BytesIO(data), len(data), content_type=content_type
            )
        )

    async def start_multipart(self, sha256: str, content_type: str) -> str:
        headers = {"Content-Type": content_type or "application/octet-stream"}
        return await self.run(self._client._create_multipart_upload, self.bucket, blob_key(sha256), headers)

    async def upload_part(self, sha256: str, upload_id: str, number: int, data: bytes) -> Part:
        etag = await self.run(
            self._client._upload_part, self.bucket, blob_key(sha256), data, None, upload_id, number
        )
        return Part(number, etag)

    async def complete_multipart(self, sha256: str, upload_id: str, parts: list[Part]) -> None:
        await self.run(
            self._client._complete_multipart_upload, self.bucket, blob_key(sha256), upload_id, parts
        )

    async def abort_multipart(self, sha256: str, upload_id: str) -> None:
        await self.run(self._client._abort_multipart_upload, self.bucket, blob_key(sha256), upload_id)

    async def open(self, sha256: str, offset: int, length: int) -> BlobReader:
        response = await self.run(self._client.get_object, self.bucket, blob_key(sha256), offset, length)
        return BlobReader(response)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
