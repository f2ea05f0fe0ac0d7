"""Settings of the artifact service, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelreg_api.addresses import (
    ARTIFACT_ADDR_ENV,
    DEFAULT_ARTIFACT_ADDR,
    DEFAULT_METADATA_ADDR,
    METADATA_ADDR_ENV,
)
from modelreg_api.channels import ClientTls, TlsConfigError
from modelreg_common.config import EnvReader, MongoTimeouts, S3Settings
from modelreg_common.identity.settings import IdentitySettings
from modelreg_common.observability.exposition import ARTIFACT_METRICS_ADDR, read_metrics_addr
from modelreg_common.tls import ServerTls, read_server_tls

MIB = 1024 * 1024
PAYLOAD_CHECKSUMS = ("crc32c", "sha256")
DAY = 86400.0
METADATA_TLS_ENV = "MODELREG_METADATA_TLS"


@dataclass(frozen=True)
class SweepSettings:
    """How long unfinished uploads and unreferenced blobs live, and how often they are swept."""

    # An upload session not finished within this time expires and its stored parts are freed.
    upload_ttl_seconds: float
    # Finished, failed, cancelled and expired sessions stay queryable this long, then vanish.
    session_retention_seconds: float
    # A blob nobody references is deleted only once it has been unclaimed this long.
    gc_grace_seconds: float
    # How often each replica sweeps expired sessions; and collects garbage (0 = only on request).
    session_sweep_interval_seconds: float
    gc_interval_seconds: float


def _metadata_tls(read: EnvReader, env: Mapping[str, str]) -> ClientTls:
    try:
        return ClientTls.from_environment(env, prefix=METADATA_TLS_ENV)
    except TlsConfigError as exc:
        read.problems.extend(exc.problems)
        return ClientTls()


@dataclass(frozen=True)
class ArtifactSettings:
    listen_addr: str
    metadata_addr: str
    # Upload sessions and the blob index live in MongoDB (collections of their own), so any
    # replica can continue any upload.
    mongodb_uri: str
    database: str
    s3: S3Settings
    sweep: SweepSettings
    # Size of each S3 multipart part; memory per upload is about part_bytes * (parts_in_flight + 1).
    part_bytes: int
    parts_in_flight: int
    # An upload of some content that recorded nothing for this long stops holding back other
    # uploads of the same content (they wait for it while it makes progress).
    upload_stall_seconds: float
    # Threads for blocking S3 and hashing work, shared by all calls.
    io_threads: int
    download_chunk_bytes: int
    grace_seconds: float
    log_level: str
    # How long a call waits for an unreachable database before it fails (UNAVAILABLE).
    mongodb_timeouts: MongoTimeouts = field(default_factory=MongoTimeouts)
    # Who may call, and the artifact service's own credential for the metadata service.
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # None: plaintext, which the settings allow on a loopback address only (modelreg_common.tls).
    tls: ServerTls | None = None
    # How this service reaches the metadata service (MODELREG_METADATA_TLS*, as a client would).
    metadata_tls: ClientTls = field(default_factory=ClientTls)
    # Where `/metrics` is served (MODELREG_METRICS_ADDR; None: `off`): docs/observability.md.
    metrics_addr: str | None = ARTIFACT_METRICS_ADDR

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ArtifactSettings:
        read = EnvReader(env)
        listen_addr = read.address(ARTIFACT_ADDR_ENV, DEFAULT_ARTIFACT_ADDR)
        settings = cls(
            listen_addr=listen_addr,
            metadata_addr=read.target(METADATA_ADDR_ENV, DEFAULT_METADATA_ADDR),
            mongodb_uri=read.mongodb_uri("MODELREG_MONGODB_URI"),
            database=read.text("MODELREG_MONGODB_DATABASE", "modelreg"),
            mongodb_timeouts=MongoTimeouts.read(read),
            s3=S3Settings(
                endpoint=read.address("MODELREG_S3_ENDPOINT"),
                access_key=read.text("MODELREG_S3_ACCESS_KEY"),
                secret_key=read.text("MODELREG_S3_SECRET_KEY"),
                secure=read.flag("MODELREG_S3_SECURE", False),
                region=read.text("MODELREG_S3_REGION", "") or None,
                bucket=read.text("MODELREG_S3_BUCKET", "modelreg"),
                payload_checksum=read.text("MODELREG_S3_PAYLOAD_CHECKSUM", "crc32c").lower(),
            ),
            sweep=SweepSettings(
                upload_ttl_seconds=read.number(
                    "MODELREG_UPLOAD_TTL_SECONDS", 7 * DAY, minimum=1, maximum=365 * DAY
                ),
                session_retention_seconds=read.number(
                    "MODELREG_UPLOAD_RETENTION_SECONDS", DAY, minimum=0, maximum=365 * DAY
                ),
                gc_grace_seconds=read.number("MODELREG_GC_GRACE_SECONDS", DAY, minimum=0, maximum=365 * DAY),
                session_sweep_interval_seconds=read.number(
                    "MODELREG_UPLOAD_SWEEP_SECONDS", 60, minimum=0.1, maximum=DAY
                ),
                gc_interval_seconds=read.number("MODELREG_GC_INTERVAL_SECONDS", 3600, minimum=0, maximum=DAY),
            ),
            part_bytes=read.integer("MODELREG_S3_PART_MIB", 16, minimum=5, maximum=5 * 1024) * MIB,
            parts_in_flight=read.integer("MODELREG_S3_PARTS_IN_FLIGHT", 2, minimum=1, maximum=16),
            upload_stall_seconds=read.number("MODELREG_UPLOAD_STALL_SECONDS", 60, minimum=1, maximum=DAY),
            io_threads=read.integer("MODELREG_IO_THREADS", 8, minimum=1, maximum=256),
            download_chunk_bytes=read.integer("MODELREG_DOWNLOAD_CHUNK_KIB", 1024, minimum=16, maximum=2048)
            * 1024,
            grace_seconds=read.number("MODELREG_SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0, maximum=600),
            log_level=read.log_level("MODELREG_LOG_LEVEL"),
            identity=IdentitySettings.read(read),
            tls=read_server_tls(read, listen_addr),
            metadata_tls=_metadata_tls(read, env),
            metrics_addr=read_metrics_addr(read, ARTIFACT_METRICS_ADDR),
        )
        if settings.identity.internal is None:
            read.problems.append(
                "MODELREG_INTERNAL_TOKEN_FILE is required: the artifact service's credential for the "
                "metadata service's internal ManifestService (docs/security.md)"
            )
        if settings.s3.payload_checksum not in PAYLOAD_CHECKSUMS:
            read.problems.append(
                f"MODELREG_S3_PAYLOAD_CHECKSUM={settings.s3.payload_checksum!r} is not one of "
                + ", ".join(PAYLOAD_CHECKSUMS)
            )
        read.finish()
        return settings
