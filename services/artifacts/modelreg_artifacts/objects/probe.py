"""The health probe of the object store: does the bucket answer (modelreg_common/store_health.py)?

A client of its own, with short timeouts and no retries, on a thread of its own: a probe stuck on
a hung server must neither wait minutes (the data client allows 300 s reads and retries) nor
take a thread from the pool the calls use. While one probe still hangs, the next counts as failed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

import urllib3
from minio import Minio
from modelreg_common.config import S3Settings


class BucketProbe:
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
