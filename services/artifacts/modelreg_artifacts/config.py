"""Settings of the artifact service, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelreg.addresses import (
    ARTIFACT_ADDR_ENV,
    DEFAULT_ARTIFACT_ADDR,
    DEFAULT_METADATA_ADDR,
    METADATA_ADDR_ENV,
)
from modelreg_common.config import EnvReader

MIB = 1024 * 1024
S3_MIN_PART_BYTES = 5 * MIB


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    region: str | None
    bucket: str


@dataclass(frozen=True)
class ArtifactSettings:
    listen_addr: str
    metadata_addr: str
    s3: S3Settings
    # Size of each S3 multipart part; memory per upload is about part_bytes * (parts_in_flight + 1).
    part_bytes: int
    parts_in_flight: int
    # Threads for blocking S3 and hashing work, shared by all calls.
    io_threads: int
    download_chunk_bytes: int
    grace_seconds: float
    log_level: str

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ArtifactSettings:
        read = EnvReader(env)
        settings = cls(
            listen_addr=read.address(ARTIFACT_ADDR_ENV, DEFAULT_ARTIFACT_ADDR),
            metadata_addr=read.address(METADATA_ADDR_ENV, DEFAULT_METADATA_ADDR),
            s3=S3Settings(
                endpoint=read.address("MODELREG_S3_ENDPOINT"),
                access_key=read.text("MODELREG_S3_ACCESS_KEY"),
                secret_key=read.text("MODELREG_S3_SECRET_KEY"),
                secure=read.flag("MODELREG_S3_SECURE", False),
                region=read.text("MODELREG_S3_REGION", "") or None,
                bucket=read.text("MODELREG_S3_BUCKET", "modelreg"),
            ),
            part_bytes=read.integer("MODELREG_S3_PART_MIB", 16, minimum=5, maximum=5 * 1024) * MIB,
            parts_in_flight=read.integer("MODELREG_S3_PARTS_IN_FLIGHT", 2, minimum=1, maximum=16),
            io_threads=read.integer("MODELREG_IO_THREADS", 8, minimum=1, maximum=256),
            download_chunk_bytes=read.integer("MODELREG_DOWNLOAD_CHUNK_KIB", 1024, minimum=16, maximum=2048)
            * 1024,
            grace_seconds=read.number("MODELREG_SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0, maximum=600),
            log_level=read.log_level("MODELREG_LOG_LEVEL"),
        )
        read.finish()
        return settings
