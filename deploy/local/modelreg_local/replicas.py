"""The production path on one machine: two metadata and two artifact replicas on one store.

Used by the multi-replica tests (tests/replicas) and the metadata benchmark's replica run.

Both metadata replicas run MongoDB's semantics (`MODELREG_STORE_SEMANTICS=mongodb`: revision
compare-and-set, the relay for several writers, no in-process replica) against FerretDB behind
our write-lock proxy; both artifact replicas reach the metadata replicas through one address list
(round robin), as they would through a Kubernetes headless Service. The stores are the cluster's
own (not the session stack's), so a test may kill them.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV

from modelreg_local.credentials import issue_token
from modelreg_local.stack import (
    ADMIN_TOKEN_FILE,
    ARTIFACT_SERVICE,
    INTERNAL_TOKEN_FILE,
    METADATA_SERVICE,
    ServiceProcess,
    ensure_secret_file,
)
from modelreg_local.stores import free_port
from modelreg_local.stores.local import LocalStores
from modelreg_local.stores.processes import ServerProcess

METADATA_REPLICAS = ("metadata-a", "metadata-b")
ARTIFACT_REPLICAS = ("artifacts-a", "artifacts-b")
STORES = ("ferretdb", "seaweedfs")


class Cluster:
    """Stores, then two metadata replicas, then two artifact replicas; each one killable.

    `env` adds to (or overrides) the services' environment.
    """

    def __init__(self, root: Path, env: Mapping[str, str] | None = None, log_level: str = "INFO"):
        self.root = root
        self._extra_env = dict(env or {})
        self._log_level = log_level
        self.stores = LocalStores(root / "stores")
        self.services: dict[str, ServiceProcess] = {}
        self.admin_token = ""
        self._tokens: dict[str, str] = {}

    # Where clients connect: every replica of a service, round robin.

    def addresses(self, names: tuple[str, ...]) -> str:
        return ",".join(self.services[name].address for name in names)

    @property
    def metadata(self) -> str:
        return self.addresses(METADATA_REPLICAS)

    @property
    def artifacts(self) -> str:
        return self.addresses(ARTIFACT_REPLICAS)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        endpoints = self.stores.start()
        internal = ensure_secret_file(self.root / INTERNAL_TOKEN_FILE)
        env = {
            **os.environ,
            **endpoints.to_environment(),
            "MODELREG_STORE_SEMANTICS": "mongodb",
            "MODELREG_INTERNAL_TOKEN_FILE": str(internal),
            "MODELREG_BOOTSTRAP_TOKEN_FILE": str(self.root / ADMIN_TOKEN_FILE),
            "MODELREG_LOG_LEVEL": self._log_level,
            "PYTHONUNBUFFERED": "1",
            **self._extra_env,
        }
        metadata_ports = {name: f"127.0.0.1:{free_port()}" for name in METADATA_REPLICAS}
        for name, address in metadata_ports.items():
            self.services[name] = ServiceProcess(
                name,
                module="modelreg_metadata",
                service=METADATA_SERVICE,
                address=address,
                env={**env, METADATA_ADDR_ENV: address},
                log_dir=self.root / "logs",
            )
        metadata_list = ",".join(metadata_ports.values())
        for name in ARTIFACT_REPLICAS:
            address = f"127.0.0.1:{free_port()}"
            self.services[name] = ServiceProcess(
                name,
                module="modelreg_artifacts",
                service=ARTIFACT_SERVICE,
                address=address,
                env={**env, METADATA_ADDR_ENV: metadata_list, ARTIFACT_ADDR_ENV: address},
                log_dir=self.root / "logs",
            )
        # The first metadata replica stores the bootstrap admin; then the others start together.
        first, *others = self.services.values()
        first.start()
        first.wait_healthy()
        for service in others:
            service.start()
        for service in others:
            service.wait_healthy()
        self.admin_token = (self.root / ADMIN_TOKEN_FILE).read_text().strip()

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.stores.servers and any(server.pid for server in self.stores.servers):
            self.stores.stop()

    def token(self, principal: str, grants: tuple[tuple[str, str], ...] = (("-", "admin"),)) -> str:
        """An API token of `principal` with `grants` (namespace or "-", role), made once."""
        if principal not in self._tokens:
            address = self.services[METADATA_REPLICAS[0]].address
            self._tokens[principal] = issue_token(address, self.admin_token, principal, grants)
        return self._tokens[principal]

    # Faults

    def store(self, name: str) -> ServerProcess:
        server = {"ferretdb": self.stores.ferretdb, "seaweedfs": self.stores.seaweedfs}[name]
        if server is None:
            raise ValueError(f"{name} is an external store here: nothing to kill")
        return server

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: a service replica or a store process (with its children)."""
        if name in self.services:
            self.services[name].kill()
            return
        pid = self.store(name).pid
        if pid is None:
            raise ValueError(f"{name} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # stores run in a session of their own

    def restart(self, name: str) -> None:
        """Start a killed process again on its data, and wait until it answers."""
        if name in self.services:
            service = self.services[name]
            service.kill()
            service.start()
            service.wait_healthy(120)
            return
        server = self.store(name)
        server.stop()  # reaps the dead process and its pid file
        server.start()
        server.wait_healthy(120)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
