"""Settings of the metadata service, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelreg_api.addresses import DEFAULT_METADATA_ADDR, METADATA_ADDR_ENV
from modelreg_common.config import EnvReader, MongoTimeouts
from modelreg_common.identity.settings import IdentitySettings
from modelreg_common.observability.exposition import METADATA_METRICS_ADDR, read_metrics_addr
from modelreg_common.tls import ServerTls, read_server_tls

from modelreg_metadata.faults import Faults

STORE_SEMANTICS = ("auto", "mongodb")


@dataclass(frozen=True)
class MetadataSettings:
    listen_addr: str
    mongodb_uri: str
    database: str
    grace_seconds: float
    log_level: str
    # How long a call waits for an unreachable database before it fails (UNAVAILABLE).
    mongodb_timeouts: MongoTimeouts = field(default_factory=MongoTimeouts)
    # FerretDB deployments only (one metadata process): keep an in-process replica for reads and
    # searches (store/replica.py). Ignored on MongoDB.
    replica: bool = True
    # "auto": MongoDB's semantics on MongoDB, one writing process on FerretDB (store/database.py).
    # "mongodb": MongoDB's semantics on any MongoDB-wire server (revision compare-and-set, the
    # relay for several processes, no replica): what several replicas of the service need.
    store_semantics: str = "auto"
    # Crash-test seam (faults.py); never set in production.
    fault_injection: str = ""
    # How often the event relay looks for outbox entries left by crashed processes.
    event_sweep_seconds: float = 10.0
    # Versions soft-deleted longer than this are purged (retention.py); 0 keeps them forever.
    purge_deleted_after_days: float = 0.0
    # Who may call: tokens, OIDC issuers, the internal credential, the bootstrap admin's file.
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # None: plaintext, which the settings allow on a loopback address only (modelreg_common.tls).
    tls: ServerTls | None = None
    # Where `/metrics` is served (MODELREG_METRICS_ADDR; None: `off`): docs/observability.md.
    metrics_addr: str | None = METADATA_METRICS_ADDR

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> MetadataSettings:
        read = EnvReader(env)
        listen_addr = read.address(METADATA_ADDR_ENV, DEFAULT_METADATA_ADDR)
        settings = cls(
            listen_addr=listen_addr,
            mongodb_uri=read.mongodb_uri("MODELREG_MONGODB_URI"),
            database=read.text("MODELREG_MONGODB_DATABASE", "modelreg"),
            mongodb_timeouts=MongoTimeouts.read(read),
            grace_seconds=read.number("MODELREG_SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0, maximum=600),
            log_level=read.log_level("MODELREG_LOG_LEVEL"),
            replica=read.flag("MODELREG_METADATA_REPLICA", True),
            store_semantics=read.text("MODELREG_STORE_SEMANTICS", "auto"),
            fault_injection=read.text("MODELREG_FAULT_INJECTION", ""),
            event_sweep_seconds=read.number("MODELREG_EVENT_SWEEP_SECONDS", 10.0, minimum=0.1, maximum=3600),
            purge_deleted_after_days=read.number(
                "MODELREG_PURGE_DELETED_AFTER_DAYS", 0.0, minimum=0, maximum=100 * 365
            ),
            identity=IdentitySettings.read(read, bootstrap=True),
            tls=read_server_tls(read, listen_addr),
            metrics_addr=read_metrics_addr(read, METADATA_METRICS_ADDR),
        )
        if settings.store_semantics not in STORE_SEMANTICS:
            read.problems.append(
                f"MODELREG_STORE_SEMANTICS: {settings.store_semantics[:32]!r} is not one of "
                + ", ".join(STORE_SEMANTICS)
            )
        try:
            Faults.parse(settings.fault_injection)
        except ValueError as exc:
            read.problems.append(f"MODELREG_FAULT_INJECTION: {exc}")
        read.finish()
        return settings

    @property
    def atomic_updates(self) -> bool | None:
        """What `MongoDatabase` takes: None detects the server, True forces MongoDB's semantics."""
        return True if self.store_semantics == "mongodb" else None
