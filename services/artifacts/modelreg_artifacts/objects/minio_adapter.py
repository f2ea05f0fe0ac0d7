"""Every private part of the `minio` SDK that the S3 object store relies on, and nothing else.

The SDK's public API has no multipart upload that outlives one call: `put_object` reads a
stream, cuts it into parts of its own choosing and completes (or aborts) the upload before it
returns. A resumable session needs the S3 calls themselves (create, upload a part, complete,
abort, list), which minio 7.2 has only as private methods of `Minio`. A whole object goes
through the private `_put_object` too: the public `put_object` insists on a stream of `bytes`,
which copies every single-part file (up to one part size, at most 5 GiB) once more and doubles
the memory per upload that the part buffers bound. And no public option stops the SDK from
hashing a payload it sends (see `s3`): that happens in `Minio._build_headers`, overridden here.

None of this is covered by the SDK's compatibility promises. So the SDK is pinned exactly
(`minio==` in services/artifacts/pyproject.toml) and tests/unit/test_minio_adapter.py fails when
a signature below changes or when the override stops taking effect; before raising the pin,
check each call against the new SDK.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from minio import Minio
from minio.credentials.credentials import Credentials
from minio.datatypes import Part

from modelreg_artifacts.objects import PendingMultipart

CRC32C_HEADER = "x-amz-checksum-crc32c"


def crc32c_header(crc32c: int) -> dict[str, str]:
    return {CRC32C_HEADER: base64.b64encode(crc32c.to_bytes(4, "big")).decode()}


class CrcCheckedMinio(Minio):
    """The SDK, except that a request carrying a CRC32C checksum is not hashed again to be sent.

    `_build_headers` is where minio 7.2 (pinned) hashes the body: with no body it hashes
    nothing, so the body's length and the unsigned-payload marker are set here instead.
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


# The SDK's own annotations say `bytes`; it only takes the length of the body and hands it to
# urllib3, which sends any buffer as it is (so a part buffer is never copied).
Payload = bytes | bytearray | memoryview


def put_object(client: Minio, bucket: str, key: str, data: Payload, headers: dict[str, str]) -> None:
    """PutObject of `data` as it is, with exactly `headers`."""
    client._put_object(bucket, key, data, headers)  # type: ignore[arg-type]


def create_multipart_upload(client: Minio, bucket: str, key: str, content_type: str) -> str:
    """CreateMultipartUpload; returns the upload's id."""
    return client._create_multipart_upload(bucket, key, {"Content-Type": content_type})


def upload_part(
    client: Minio,
    bucket: str,
    key: str,
    *,
    upload_id: str,
    number: int,
    data: Payload,
    headers: dict[str, str],
) -> str:
    """UploadPart; returns the part's ETag."""
    return client._upload_part(bucket, key, data, headers, upload_id, number)  # type: ignore[arg-type]


def complete_multipart_upload(
    client: Minio, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> None:
    """CompleteMultipartUpload from (part number, ETag) pairs."""
    client._complete_multipart_upload(bucket, key, upload_id, [Part(number, etag) for number, etag in parts])


def abort_multipart_upload(client: Minio, bucket: str, key: str, upload_id: str) -> None:
    client._abort_multipart_upload(bucket, key, upload_id)


def list_multipart_uploads(client: Minio, bucket: str, prefix: str) -> list[PendingMultipart]:
    """Every incomplete multipart upload under `prefix` (ListMultipartUploads, all pages)."""
    found: list[PendingMultipart] = []
    key_marker: str | None = None
    id_marker: str | None = None
    while True:
        result = client._list_multipart_uploads(
            bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=id_marker
        )
        found.extend(
            PendingMultipart(u.object_name, u.upload_id or "", u.initiated_time) for u in result.uploads
        )
        if not result.is_truncated:
            return found
        # minio 7.2.20 stores NextUploadIdMarker under a misspelt attribute, so `id_marker` stays
        # None and the next page starts after the whole key, skipping its other uploads (a key
        # has two only after a crash; tests/unit/test_minio_adapter.py notices when it is fixed).
        key_marker, id_marker = result.next_key_marker, result.next_upload_id_marker
