"""The private surface of the `minio` SDK that the artifact service relies on, pinned and checked.

`modelreg_artifacts.objects.minio_adapter` calls private methods of `Minio` and overrides
`_build_headers`. These tests fail when the pin, a signature or what the override achieves
changes, so an SDK upgrade cannot silently break uploads or bring back a hash of every payload.
Requests go to a fake HTTP pool that answers as S3 would: no server is needed.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c
import minio.helpers
import pytest
import urllib3
from minio import Minio
from modelreg_artifacts.objects import PendingMultipart
from modelreg_artifacts.objects import minio_adapter as adapter

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "services" / "artifacts" / "modelreg_artifacts"
S3_XML = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

# Every private method the adapter calls or overrides, with its signature in the pinned SDK.
PRIVATE_SURFACE = {
    "_build_headers": (
        "(self, host: 'str', headers: 'Optional[DictType]' = None, body: 'Optional[bytes]' = None, "
        "creds: 'Optional[Credentials]' = None) -> 'tuple[DictType, datetime]'"
    ),
    "_put_object": (
        "(self, bucket_name: 'str', object_name: 'str', data: 'bytes', "
        "headers: 'Optional[DictType]' = None, query_params: 'Optional[DictType]' = None) "
        "-> 'ObjectWriteResult'"
    ),
    "_create_multipart_upload": (
        "(self, bucket_name: 'str', object_name: 'str', headers: 'DictType') -> 'str'"
    ),
    "_upload_part": (
        "(self, bucket_name: 'str', object_name: 'str', data: 'bytes', headers: 'Optional[DictType]', "
        "upload_id: 'str', part_number: 'int') -> 'str'"
    ),
    "_complete_multipart_upload": (
        "(self, bucket_name: 'str', object_name: 'str', upload_id: 'str', parts: 'list[Part]', "
        "ssec: 'Optional[SseCustomerKey]' = None) -> 'CompleteMultipartUploadResult'"
    ),
    "_abort_multipart_upload": "(self, bucket_name: 'str', object_name: 'str', upload_id: 'str')",
    "_list_multipart_uploads": (
        "(self, bucket_name: 'str', delimiter: 'Optional[str]' = None, "
        "encoding_type: 'Optional[str]' = None, key_marker: 'Optional[str]' = None, "
        "max_uploads: 'Optional[int]' = None, prefix: 'Optional[str]' = None, "
        "upload_id_marker: 'Optional[str]' = None, extra_headers: 'Optional[DictType]' = None, "
        "extra_query_params: 'Optional[DictType]' = None) -> 'ListMultipartUploadsResult'"
    ),
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakeS3(urllib3.PoolManager):
    """Records the SDK's requests and answers them as an S3 server would."""

    def __init__(self, answers: list[bytes] | None = None):
        super().__init__()
        self.requests: list[Request] = []
        self._answers = list(answers or [])  # XML bodies for the requests that expect one, in order

    # PoolManager's own signature, which differs from its base class's (urllib3 ignores it there too).
    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        parts = urlsplit(url)
        self.requests.append(
            Request(
                method,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                {key.lower(): value for key, value in kw["headers"].items()},
                kw.get("body"),
            )
        )
        body = self._answers.pop(0) if method in ("POST", "GET") else b""
        return urllib3.HTTPResponse(
            body=body,
            headers={"etag": '"etag-1"', "content-type": "application/xml"},
            status=204 if method == "DELETE" else 200,
            preload_content=True,
        )


def _client(kind: type[Minio], http: FakeS3) -> Minio:
    # A region spares the SDK a GetBucketLocation request.
    return kind(
        "s3.test:9000",
        access_key="key",
        secret_key="secret",
        secure=False,
        region="us-east-1",
        http_client=http,
    )


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every body the SDK hashes to send a request (SHA-256 for the signature, or MD5)."""
    seen: list[Any] = []

    def recording(function: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        def record(data: Any) -> str | None:
            seen.append(data)
            return function(data)

        return record

    # Where minio.api looks them up (it imports them from minio.helpers).
    monkeypatch.setattr("minio.api.sha256_hash", recording(minio.helpers.sha256_hash))
    monkeypatch.setattr("minio.api.md5sum_hash", recording(minio.helpers.md5sum_hash))
    return seen


def test_the_sdk_is_pinned_exactly_to_the_installed_version() -> None:
    project = tomllib.loads((ROOT / "services" / "artifacts" / "pyproject.toml").read_text())
    pins = [dep for dep in project["project"]["dependencies"] if re.match(r"minio\b", dep)]
    assert pins == [f"minio=={version('minio')}"]


@pytest.mark.parametrize("name", sorted(PRIVATE_SURFACE))
def test_the_private_methods_keep_their_signatures(name: str) -> None:
    assert str(inspect.signature(getattr(Minio, name))) == PRIVATE_SURFACE[name]


def test_only_the_adapter_uses_the_sdk_and_only_two_modules_import_it() -> None:
    private = re.compile("|".join(re.escape(f".{name}(") for name in PRIVATE_SURFACE))
    importing = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if path.name != "minio_adapter.py":
            assert not private.search(source), f"{path} calls a private method of the minio SDK"
        if re.search(r"^(from|import) minio\b", source, re.MULTILINE):
            importing.add(path.relative_to(PACKAGE).as_posix())
    assert importing == {"objects/s3.py", "objects/minio_adapter.py"}


PAYLOAD = b"model weights " * 1000


def _write(client: Minio, what: str, data: bytearray, headers: dict[str, str]) -> None:
    if what == "part":
        etag = adapter.upload_part(
            client, "bucket", "blobs/a", upload_id="mp-1", number=3, data=data, headers=headers
        )
        assert etag == "etag-1"
    else:
        adapter.put_object(client, "bucket", "blobs/a", data, {"Content-Type": "text/plain", **headers})


@pytest.mark.parametrize("what", ["part", "object"])
def test_a_write_with_a_crc32c_is_sent_as_it_is_and_never_hashed(what: str, hashed: list[Any]) -> None:
    """What the `_build_headers` override is for: the server checks the CRC32C, we hash nothing."""
    http = FakeS3()
    data = bytearray(PAYLOAD)
    checksum = adapter.crc32c_header(google_crc32c.value(PAYLOAD))
    _write(_client(adapter.CrcCheckedMinio, http), what, data, checksum)
    [sent] = http.requests
    assert sent.method == "PUT"
    assert sent.path == "/bucket/blobs/a"
    if what == "part":
        assert sent.query == {"partNumber": ["3"], "uploadId": ["mp-1"]}
    else:
        assert sent.headers["content-type"] == "text/plain"
    assert sent.body is data  # handed to urllib3 as it is: no copy
    assert sent.headers[adapter.CRC32C_HEADER] == checksum[adapter.CRC32C_HEADER]
    assert sent.headers["content-length"] == str(len(PAYLOAD))
    assert sent.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "content-md5" not in sent.headers
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")  # the request stays signed
    assert all(not body for body in hashed)


@pytest.mark.parametrize("kind", [Minio, adapter.CrcCheckedMinio])
def test_a_write_without_a_crc32c_carries_the_sdks_payload_hash(kind: type[Minio], hashed: list[Any]) -> None:
    """MODELREG_S3_PAYLOAD_CHECKSUM=sha256: the SDK's own behaviour, which the override leaves alone."""
    http = FakeS3()
    _write(_client(kind, http), "part", bytearray(PAYLOAD), {})
    [sent] = http.requests
    assert sent.headers["x-amz-content-sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert adapter.CRC32C_HEADER not in sent.headers
    assert any(body == PAYLOAD for body in hashed)


def test_the_multipart_calls_reach_s3_as_intended() -> None:
    http = FakeS3(
        [
            f"<InitiateMultipartUploadResult {S3_XML}><Bucket>bucket</Bucket><Key>blobs/a</Key>"
            "<UploadId>mp-1</UploadId></InitiateMultipartUploadResult>".encode(),
            f"<CompleteMultipartUploadResult {S3_XML}><Bucket>bucket</Bucket><Key>blobs/a</Key>"
            '<ETag>"whole"</ETag></CompleteMultipartUploadResult>'.encode(),
        ]
    )
    client = _client(adapter.CrcCheckedMinio, http)
    assert adapter.create_multipart_upload(client, "bucket", "blobs/a", "text/plain") == "mp-1"
    adapter.complete_multipart_upload(client, "bucket", "blobs/a", "mp-1", [(1, "e1"), (2, "e2")])
    adapter.abort_multipart_upload(client, "bucket", "blobs/a", "mp-1")
    create, complete, abort = http.requests
    assert (create.method, create.path, create.query) == ("POST", "/bucket/blobs/a", {"uploads": [""]})
    assert create.headers["content-type"] == "text/plain"
    assert (complete.method, complete.query) == ("POST", {"uploadId": ["mp-1"]})
    parts = re.findall(rb"<PartNumber>(\d+)</PartNumber><ETag>\"(\w+)\"</ETag>", complete.body)
    assert parts == [(b"1", b"e1"), (b"2", b"e2")]
    assert (abort.method, abort.path, abort.query) == ("DELETE", "/bucket/blobs/a", {"uploadId": ["mp-1"]})


def _upload_listing(keys: list[str], *, truncated: bool) -> bytes:
    uploads = "".join(
        f"<Upload><Key>{key}</Key><UploadId>mp-{key[-1]}</UploadId>"
        "<Initiated>2026-01-02T03:04:05.000Z</Initiated></Upload>"
        for key in keys
    )
    return (
        f"<ListMultipartUploadsResult {S3_XML}><Bucket>bucket</Bucket>"
        f"<NextKeyMarker>{keys[-1]}</NextKeyMarker><NextUploadIdMarker>mp-{keys[-1][-1]}</NextUploadIdMarker>"
        f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{uploads}</ListMultipartUploadsResult>"
    ).encode()


def test_listing_pending_multiparts_follows_every_page() -> None:
    http = FakeS3(
        [
            _upload_listing(["blobs/a", "blobs/b"], truncated=True),
            _upload_listing(["blobs/c"], truncated=False),
        ]
    )
    found = adapter.list_multipart_uploads(_client(adapter.CrcCheckedMinio, http), "bucket", "blobs/")
    assert [(p.key, p.multipart_id) for p in found] == [
        ("blobs/a", "mp-a"),
        ("blobs/b", "mp-b"),
        ("blobs/c", "mp-c"),
    ]
    assert all(isinstance(p, PendingMultipart) and p.initiated is not None for p in found)
    first, second = http.requests
    assert first.query["prefix"] == ["blobs/"]
    assert "key-marker" not in first.query
    assert second.query["key-marker"] == ["blobs/b"]
    # minio 7.2.20 keeps NextUploadIdMarker under a misspelt attribute, so the next page starts
    # after the key alone and S3 skips the key's other uploads. A key has two only after a crash
    # between starting an upload and recording it. This fails, as a reminder, once the SDK reads it.
    assert "upload-id-marker" not in second.query
