"""Filter errors at their position, and downloads streamed byte for byte, verified."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from minio import Minio
from modelreg_local.stack import LocalStack

from tests.integration.test_cli import damage
from tests.support import unique
from tests.web.conftest import SignedIn
from tests.web.sample import Sample, client_for, make_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return make_sample(stack, tmp_path_factory.mktemp("web-files"), namespace="web-files")


@pytest.mark.parametrize(
    ("text", "position"),
    [("metrics.accuracy >", 19), ('tags.run = "r1" AND AND', 21), ("metrics.accuracy >> 1", 19)],
)
def test_a_filter_syntax_error_is_shown_at_its_position(
    signed_in: SignedIn, sample: Sample, text: str, position: int
) -> None:
    browser = signed_in()
    for path in (sample.path, f"/n/{sample.namespace}"):
        page = browser.get(path, params={"filter": text})
        assert page.status_code == 200, page.text[:2000]
        marker = f'data-testid="filter-error" data-position="{position}"'
        assert marker in page.text, page.text.split('id="filter-input"')[1][:1500]
        assert f"position {position}" in page.text
        assert " " * (position - 1) + "^" in page.text


def test_download_streams_the_exact_bytes(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    for path, data in sample.files.items():
        response = browser.get(f"{sample.path}/v/1/files/{path}")
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["x-content-sha256"] == hashlib.sha256(data).hexdigest()
        assert response.headers["content-length"] == str(len(data))
        assert response.headers["content-disposition"].startswith("attachment;")
    missing = browser.get(f"{sample.path}/v/1/files/no-such-file")
    assert missing.status_code == 404


def test_a_corrupted_file_never_downloads_complete(
    signed_in: SignedIn, stack: LocalStack, bucket: tuple[Minio, str], tmp_path: Path
) -> None:
    model = f"web-files/{unique('rot')}"
    small, large = os.urandom(1000), os.urandom(5 * 1024 * 1024 + 7)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "small.bin").write_bytes(small)
    (tmp_path / "files" / "large.bin").write_bytes(large)
    with client_for(stack, tmp_path / "cache") as registry:
        registry.push(model, tmp_path / "files")
    damage(bucket, small)
    damage(bucket, large)
    browser = signed_in()
    base = "/n/" + model.replace("/", "/m/", 1) + "/v/1/files"
    refused = browser.get(f"{base}/small.bin")
    assert refused.status_code == 502
    assert "verification" in refused.text
    # Larger than a chunk: the bytes flow until the end shows the mismatch, then the response is
    # cut short of its Content-Length (the last chunk is never sent).
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        browser.get(f"{base}/large.bin")


def test_a_bad_order_or_audit_filter_is_shown_next_to_its_field(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    page = browser.get(sample.path, params={"order_by": "metrics.accuracy sideways"})
    assert page.status_code == 200
    assert 'data-testid="filter-error"' in page.text
    assert "order_by" in page.text.split('data-testid="filter-error"')[1][:2000]
    audit = browser.get("/audit", params={"action": "NOT_AN_ACTION"})
    assert audit.status_code == 400
    assert 'id="audit-action-problem"' in audit.text
