"""Identity settings that cannot work are refused at start, each named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modelreg_common.config import ConfigError, EnvReader
from modelreg_common.identity.settings import IdentitySettings
from modelreg_common.security import open_security
from modelreg_metadata.config import MetadataSettings
from pymongo import AsyncMongoClient

MONGO = {"MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1"}


def test_a_readable_secret_a_short_one_and_a_bad_principal_are_refused(tmp_path: Path) -> None:
    shared = tmp_path / "internal.token"
    shared.write_text("s" * 40)
    os.chmod(shared, 0o640)
    short = tmp_path / "short.token"
    short.write_text("tiny")
    os.chmod(short, 0o600)
    for env, problem in (
        ({"MODELREG_INTERNAL_TOKEN_FILE": str(shared)}, "readable by others"),
        ({"MODELREG_INTERNAL_TOKEN_FILE": str(short)}, "fewer than 32 characters"),
        ({"MODELREG_INTERNAL_TOKEN_FILE": str(tmp_path / "missing")}, "MODELREG_INTERNAL_TOKEN_FILE"),
        ({"MODELREG_INTERNAL_PRINCIPALS": "artifacts"}, "MODELREG_INTERNAL_PRINCIPALS"),
        ({"MODELREG_OIDC_ISSUERS_FILE": str(tmp_path / "nope.json")}, "MODELREG_OIDC_ISSUERS_FILE"),
        ({"MODELREG_AUTH_CACHE_SECONDS": "60"}, "MODELREG_AUTH_CACHE_SECONDS"),
    ):
        with pytest.raises(ConfigError) as caught:
            MetadataSettings.from_environment({**MONGO, **env})
        assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_defaults_accept_no_jwts_and_cache_two_seconds() -> None:
    settings = IdentitySettings.read(EnvReader({}))
    assert settings.oidc_issuers_file is None
    assert settings.internal is None
    assert settings.cache_seconds == 2.0


async def test_a_broken_issuers_file_is_a_configuration_error(tmp_path: Path) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        '[{"issuer": "https://idp.test", "audiences": ["modelreg"], "jwks_file": "keys.json"}]'
    )
    (tmp_path / "keys.json").write_text('{"keys": []}')
    settings = IdentitySettings(oidc_issuers_file=issuers)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    try:
        with pytest.raises(ConfigError, match=r"MODELREG_OIDC_ISSUERS_FILE: .*no usable signing key"):
            await open_security(settings, client["modelreg"], mtls=False)
    finally:
        await client.close()
