"""Page tokens, page sizes and environment settings."""

from __future__ import annotations

import base64
import json

import pytest
from modelreg_api.errors import InvalidArgument
from modelreg_artifacts.config import MIB, ArtifactSettings
from modelreg_common import paging
from modelreg_common.config import ConfigError
from modelreg_metadata.config import MetadataSettings


def test_page_token_round_trip_and_binding_to_its_query() -> None:
    token = paging.encode_token("models:namespaces/a", ["model-7"])
    assert paging.decode_token(token, "models:namespaces/a") == ["model-7"]
    assert paging.decode_token("", "models:namespaces/a") is None
    with pytest.raises(InvalidArgument) as caught:
        paging.decode_token(token, "models:namespaces/b")
    assert caught.value.field == "page_token"
    for garbage in ("!!!", "e30", "bm90IGpzb24"):
        with pytest.raises(InvalidArgument):
            paging.decode_token(garbage, "models:namespaces/a")


def test_page_sizes() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(5) == 5
    assert paging.page_size(10**6) == paging.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)


def test_metadata_settings_defaults_and_all_problems_at_once() -> None:
    settings = MetadataSettings.from_environment({"MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1/"})
    assert settings.listen_addr == "127.0.0.1:50051"
    assert settings.database == "modelreg"
    assert settings.purge_deleted_after_days == 0  # deleted versions are kept until purged
    with pytest.raises(ConfigError) as caught:
        MetadataSettings.from_environment(
            {
                "MODELREG_LOG_LEVEL": "loud",
                "MODELREG_SHUTDOWN_GRACE_SECONDS": "x",
                "MODELREG_PURGE_DELETED_AFTER_DAYS": "-1",
            }
        )
    assert len(caught.value.problems) == 4


def test_artifact_settings(internal_token_file: str) -> None:
    env = {
        "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
        "MODELREG_S3_ENDPOINT": "127.0.0.1:9000",
        "MODELREG_S3_ACCESS_KEY": "k",
        "MODELREG_S3_SECRET_KEY": "s",
        "MODELREG_MONGODB_URI": "mongodb://127.0.0.1:27017",  # upload sessions live in MongoDB
    }
    settings = ArtifactSettings.from_environment(env)
    assert settings.listen_addr == "127.0.0.1:50052"
    assert settings.part_bytes == 16 * MIB
    assert settings.s3.bucket == "modelreg"
    assert not settings.s3.secure
    with pytest.raises(ConfigError, match="MODELREG_S3_SECURE"):
        ArtifactSettings.from_environment({**env, "MODELREG_S3_SECURE": "maybe"})


def test_page_token_keys_beyond_what_the_stores_hold_are_refused() -> None:
    def forged(key_json: str) -> str:
        fingerprint = json.loads(base64.urlsafe_b64decode(paging.encode_token("q", []) + "=="))["q"]
        payload = f'{{"q":"{fingerprint}","k":{key_json}}}'
        return base64.urlsafe_b64encode(payload.encode()).decode()

    assert paging.decode_token(forged('[["u", 9223372036854775807], "x"]'), "q") is not None
    for key in ("[1180591620717411303424]", "[-9223372036854775809]", "[1e999]", "[NaN]", "[[[[1]]]]"):
        with pytest.raises(InvalidArgument) as caught:
            paging.decode_token(forged(key), "q")
        assert caught.value.field == "page_token"
    with pytest.raises(InvalidArgument):
        paging.decode_token(forged("[" * 100_000), "q")
