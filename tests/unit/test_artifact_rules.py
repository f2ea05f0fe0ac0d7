"""The artifact service's pure rules: part sizes within S3's limits, session states, digests."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest
from modelreg_api.errors import InvalidArgument
from modelreg_api.names import InvalidResourceName, ModelVersionName, parse_upload_session_name
from modelreg_artifacts.config import ArtifactSettings
from modelreg_artifacts.domain import (
    S3_MAX_PARTS,
    S3_MIN_PART_BYTES,
    UploadSession,
    UploadSpec,
    UploadState,
    check_digests,
    part_size_for,
)
from modelreg_artifacts.hashing import LiveHashes
from modelreg_common.config import ConfigError

MIB = 1024**2
TIB = 1024**4


@pytest.mark.parametrize("size", [0, 1, 16 * MIB, 156 * 1024 * MIB, TIB, 5 * TIB])
@pytest.mark.parametrize("preferred", [5 * MIB, 16 * MIB, 64 * MIB])
def test_every_file_up_to_5_tib_fits_in_10000_parts(size: int, preferred: int) -> None:
    part = part_size_for(size, preferred)
    assert part >= S3_MIN_PART_BYTES
    assert part >= preferred
    assert -(-size // part) <= S3_MAX_PARTS
    assert part % MIB == 0


def test_the_preferred_part_size_is_kept_while_it_fits() -> None:
    assert part_size_for(TIB // 1000, 16 * MIB) == 16 * MIB
    assert part_size_for(TIB, 16 * MIB) == 105 * MIB


def test_an_active_session_past_its_expiry_reads_as_expired() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    session = UploadSession(
        id="a" * 32,
        spec=UploadSpec(ModelVersionName("ns", "m", 1), "f", 10, "0" * 64, "x"),
        state=UploadState.ACTIVE,
        committed_size=0,
        part_bytes=16 * MIB,
        writer_epoch=1,
        create_time=start,
        update_time=start,
        expire_time=start + timedelta(hours=1),
    )
    assert session.state_at(start + timedelta(minutes=59)) is UploadState.ACTIVE
    assert session.state_at(start + timedelta(hours=1)) is UploadState.EXPIRED
    assert str(session.name) == "uploads/" + "a" * 32


def test_live_hashes_resume_only_at_the_offset_they_saw() -> None:
    hashes = LiveHashes(capacity=2)
    hasher = hashlib.sha256(b"abc")
    hashes.save("s1", 3, hasher)
    resumed = hashes.resume("s1", 3)
    assert resumed is not None
    resumed.update(b"def")
    assert resumed.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    assert hashes.resume("s1", 3) is not None  # a copy was handed out, the snapshot is intact
    assert hashes.resume("s1", 6) is None
    assert hashes.resume("elsewhere", 0) is not None  # nothing to know at offset 0
    hashes.save("s2", 1, hashlib.sha256(b"a"))
    hashes.save("s3", 1, hashlib.sha256(b"a"))
    assert hashes.resume("s1", 3) is None  # evicted: the oldest snapshot goes first


def test_upload_session_names() -> None:
    assert parse_upload_session_name("uploads/" + "f" * 32).upload == "f" * 32
    for bad in ("uploads/" + "F" * 32, "uploads/short", "uploads", "x/" + "f" * 32):
        with pytest.raises(InvalidResourceName):
            parse_upload_session_name(bad)


def test_digest_lists_are_checked() -> None:
    assert check_digests(["a" * 64]) == ["a" * 64]
    with pytest.raises(InvalidArgument):
        check_digests(["A" * 64])
    with pytest.raises(InvalidArgument):
        check_digests(["a" * 64] * 1001)


def test_artifact_settings_need_the_database(internal_token_file: str) -> None:
    env = {
        "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
        "MODELREG_S3_ENDPOINT": "127.0.0.1:9000",
        "MODELREG_S3_ACCESS_KEY": "k",
        "MODELREG_S3_SECRET_KEY": "s",
    }
    with pytest.raises(ConfigError) as caught:
        ArtifactSettings.from_environment(env)
    assert caught.value.problems == ["MODELREG_MONGODB_URI is required"]
    settings = ArtifactSettings.from_environment(
        {**env, "MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1", "MODELREG_GC_GRACE_SECONDS": "60"}
    )
    assert settings.sweep.gc_grace_seconds == 60
    assert settings.sweep.upload_ttl_seconds == 7 * 86400
    assert settings.s3.payload_checksum == "crc32c"


def test_the_payload_checksum_is_crc32c_or_sha256(internal_token_file: str) -> None:
    env = {
        "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
        "MODELREG_S3_ENDPOINT": "127.0.0.1:9000",
        "MODELREG_S3_ACCESS_KEY": "k",
        "MODELREG_S3_SECRET_KEY": "s",
        "MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1",
    }
    assert (
        ArtifactSettings.from_environment(
            {**env, "MODELREG_S3_PAYLOAD_CHECKSUM": "SHA256"}
        ).s3.payload_checksum
        == "sha256"
    )
    with pytest.raises(ConfigError) as caught:
        ArtifactSettings.from_environment({**env, "MODELREG_S3_PAYLOAD_CHECKSUM": "md5"})
    assert caught.value.problems == ["MODELREG_S3_PAYLOAD_CHECKSUM='md5' is not one of crc32c, sha256"]


def test_the_artifact_service_needs_a_private_internal_credential(internal_token_file: str) -> None:
    env = {
        "MODELREG_S3_ENDPOINT": "127.0.0.1:9000",
        "MODELREG_S3_ACCESS_KEY": "k",
        "MODELREG_S3_SECRET_KEY": "s",
        "MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1",
    }
    with pytest.raises(ConfigError, match="MODELREG_INTERNAL_TOKEN_FILE is required"):
        ArtifactSettings.from_environment(env)
    os.chmod(internal_token_file, 0o644)
    with pytest.raises(ConfigError, match="readable by others: chmod 600"):
        ArtifactSettings.from_environment({**env, "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file})
    os.chmod(internal_token_file, 0o600)
    settings = ArtifactSettings.from_environment({**env, "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file})
    assert settings.identity.internal is not None
    assert settings.identity.internal.principal == "service:artifacts"
