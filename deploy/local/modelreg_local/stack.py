"""The whole registry on one machine: the stores plus both services as real processes.

`make run` and the integration tests both use `LocalStack`, so what the tests exercise is what
a developer runs. Services are separate processes (not in-process servers) so tests can kill
them like a real crash would, and so each has its own event loop and logs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV, ServiceAddresses
from modelreg_api.channels import ClientTls, TlsConfigError, channel_credentials
from modelreg_common.observability.exposition import METRICS_ADDR_ENV

from modelreg_local.stores import LocalEndpoints, LocalStores, StoreEndpoints, free_port, open_stores
from modelreg_local.supervisor import Child

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name; the bootstrap admin's credential (the CLI looks here too)
INTERNAL_TOKEN_FILE = "internal.token"  # noqa: S105 - a file name; the artifact service's credential for the metadata service
WEB_SESSION_KEY_FILE = "web-session.key"  # the web UI's cookie key (mode 0600), kept across runs
METADATA_SERVICE = "modelregistry.v1.MetadataService"
ARTIFACT_SERVICE = "modelregistry.v1.ArtifactService"
_LOG_TAIL_LINES = 40
# Set in a service's environment when it serves TLS (modelreg_common.tls reads it).
_SERVER_CERT_ENV = "MODELREG_TLS_CERT_FILE"


class ServiceStartError(RuntimeError):
    pass


def health_check_tls(env: Mapping[str, str]) -> ClientTls:
    """How the stack's own health check reaches a service started with `env`: TLS exactly when
    the service serves it (loopback or not), trusting MODELREG_TLS_CA_FILE (else the system's
    roots) and presenting MODELREG_TLS_CLIENT_CERT_FILE/_KEY_FILE if set, as any client would."""
    if not env.get(_SERVER_CERT_ENV, "").strip():
        return ClientTls(mode="off")
    return replace(ClientTls.from_environment(env), mode="on")


class ServiceProcess:
    """One service (`python -m <module>`) with its log file, health wait and graceful stop.

    `tls` is how the health check connects; by default it follows `env` (`health_check_tls`).
    `metrics_address` is where it serves `/metrics`: by default MODELREG_METRICS_ADDR of `env`,
    else a free loopback port of its own (it is not put in `env`, so a process started with a
    copy of this one's `env` takes another port instead of failing on this one's).
    """

    def __init__(
        self,
        name: str,
        *,
        module: str,
        service: str,
        address: str,
        env: Mapping[str, str],
        log_dir: Path,
        tls: ClientTls | None = None,
        metrics_address: str | None = None,
    ):
        self.name = name
        self.module = module
        self.service = service
        self.address = address
        self.env = dict(env)
        given = metrics_address or self.env.pop(METRICS_ADDR_ENV, "")
        self.metrics_address = given or f"127.0.0.1:{free_port()}"
        self.tls = tls
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**self.env, METRICS_ADDR_ENV: self.metrics_address},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def exited(self) -> int | None:
        return self._process.poll() if self._process else None

    def wait_exited(self, timeout: float) -> int | None:
        """The exit code once the process ends on its own (a crash test's expected end), or None
        after `timeout` seconds (then it is killed)."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._close_log()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _health_channel(self) -> grpc.Channel:
        try:
            tls = self.tls or health_check_tls(self.env)
            if not tls.enabled_for(self.address):
                return grpc.insecure_channel(self.address)
            return grpc.secure_channel(self.address, channel_credentials(tls))
        except TlsConfigError as exc:
            raise ServiceStartError(f"{self.name}: cannot check its health: {exc}") from None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until the standard gRPC health check reports SERVING for this service."""
        deadline = time.monotonic() + timeout
        last_error = ""
        with self._health_channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                code = self.exited()
                if code is not None:
                    raise ServiceStartError(
                        f"{self.name} exited with code {code} before becoming healthy; log {self.log_path}:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=self.service), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError as exc:
                    # A TLS mismatch (plaintext to a TLS port, an untrusted CA) shows up only here.
                    last_error = (
                        f" (last health check: {exc.details()})" if isinstance(exc, grpc.Call) else ""
                    )
                if time.monotonic() > deadline:
                    raise ServiceStartError(
                        f"{self.name} is not healthy on {self.address} after {timeout:.0f}s{last_error}; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the service drains and closes its clients), then SIGKILL after `timeout`."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no draining, no cleanup."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_log()

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start()
        self.wait_healthy(timeout)

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None


class WebProcess(ServiceProcess):
    """The web UI (`python -m modelreg_web`, HTTP): ready once GET /readyz answers 200, which it
    does when it reaches the metadata service."""

    def __init__(
        self,
        name: str,
        *,
        address: str,
        env: Mapping[str, str],
        log_dir: Path,
        metrics_address: str | None = None,
    ) -> None:
        super().__init__(
            name,
            module="modelreg_web",
            service="",
            address=address,
            env=env,
            log_dir=log_dir,
            metrics_address=metrics_address,
        )

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            code = self.exited()
            if code is not None:
                raise ServiceStartError(
                    f"{self.name} exited with code {code} before becoming ready; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as reply:  # noqa: S310 - our own http URL
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = f" (last check: {exc})"
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{self.name} is not ready on {self.url} after {timeout:.0f}s{last_error}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)


def web_environment(env: Mapping[str, str], data_root: Path, address: str) -> dict[str, str]:
    """The web UI's environment: the services' addresses from `env`, its own address, and the
    session key file in the data directory (created once, mode 0600)."""
    key_file = ensure_secret_file(data_root / WEB_SESSION_KEY_FILE)
    return {**env, "MODELREG_WEB_ADDR": address, "MODELREG_WEB_SESSION_KEY_FILE": str(key_file)}


class _HasPid(Protocol):
    @property
    def pid(self) -> int | None: ...


def _pid_of(process: _HasPid) -> Callable[[], int | None]:
    return lambda: process.pid


@dataclass(frozen=True)
class StackEndpoints:
    addresses: ServiceAddresses
    stores: StoreEndpoints
    log_dir: Path


def ensure_secret_file(path: Path) -> Path:
    """A file holding a fresh 256-bit secret, mode 0600, created once and kept across runs."""
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    return path


class LocalStack:
    """Stores, then the metadata service, then the artifact service; stopped in reverse order.

    Authentication is on, as in production: on first start the metadata service writes the
    bootstrap admin's API token to `<data root>/admin.token` (mode 0600), and the two services
    share an internal credential in `<data root>/internal.token`.
    """

    def __init__(
        self,
        data_root: Path,
        *,
        addresses: ServiceAddresses,
        mongo_port: int = 0,
        s3_port: int = 0,
        env: Mapping[str, str] = os.environ,
        prefer_containers: bool = False,
        log_level: str = "INFO",
        metrics: ServiceAddresses | None = None,
        web_address: str | None = None,
        web_metrics: str | None = None,
    ):
        self.data_root = data_root
        self.addresses = addresses
        self._metrics = metrics  # where each service serves /metrics (None: free ports)
        self.log_dir = data_root / "logs"
        self._mongo_port = mongo_port
        self._s3_port = s3_port
        self._env = dict(env)
        self._prefer_containers = prefer_containers
        self._log_level = log_level
        self._exit = contextlib.ExitStack()
        self.metadata: ServiceProcess | None = None
        self.artifacts: ServiceProcess | None = None
        # The web UI runs only when asked for (`make run`); the test session starts its own.
        self.web_address = web_address
        self._web_metrics = web_metrics  # where the web UI serves /metrics (None: a free port)
        self.web: WebProcess | None = None
        self.stores: StoreEndpoints | None = None
        self.local_stores: LocalStores | None = None  # the store processes, when this stack runs them
        self.admin_token_file = data_root / ADMIN_TOKEN_FILE

    def admin_token(self) -> str:
        """The bootstrap admin's API token (written by the metadata service on first start)."""
        return self.admin_token_file.read_text().strip()

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

    def start(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.data_root.chmod(0o700)  # credentials live here
        internal_token = ensure_secret_file(self.data_root / INTERNAL_TOKEN_FILE)
        opened = open_stores(
            self.data_root,
            mongo_port=self._mongo_port,
            s3_port=self._s3_port,
            env=self._env,
            prefer_containers=self._prefer_containers,
        )
        self.stores = self._exit.enter_context(opened)
        self.local_stores = opened.stores if isinstance(opened, LocalEndpoints) else None
        env = {
            **self._env,
            **self.stores.to_environment(),
            METADATA_ADDR_ENV: self.addresses.metadata,
            ARTIFACT_ADDR_ENV: self.addresses.artifacts,
            "MODELREG_LOG_LEVEL": self._log_level,
            "PYTHONUNBUFFERED": "1",
            "MODELREG_INTERNAL_TOKEN_FILE": str(internal_token),
        }
        self.metadata = ServiceProcess(
            "metadata",
            module="modelreg_metadata",
            service=METADATA_SERVICE,
            address=self.addresses.metadata,
            env={**env, "MODELREG_BOOTSTRAP_TOKEN_FILE": str(self.admin_token_file)},
            log_dir=self.log_dir,
            metrics_address=self._metrics.metadata if self._metrics else None,
        )
        self.artifacts = ServiceProcess(
            "artifacts",
            module="modelreg_artifacts",
            service=ARTIFACT_SERVICE,
            address=self.addresses.artifacts,
            env=env,
            log_dir=self.log_dir,
            metrics_address=self._metrics.artifacts if self._metrics else None,
        )
        for service in (self.metadata, self.artifacts):
            service.start()
            self._exit.callback(service.stop)
        for service in (self.metadata, self.artifacts):
            service.wait_healthy()
        if self.web_address:
            self.web = WebProcess(
                "web",
                address=self.web_address,
                env=web_environment(env, self.data_root, self.web_address),
                log_dir=self.log_dir,
                metrics_address=self._web_metrics,
            )
            self.web.start()
            self._exit.callback(self.web.stop)
            self.web.wait_healthy()

    def stop(self) -> None:
        self._exit.close()

    def children(self) -> list[Child]:
        """The processes this stack runs, stores first (the order to revive them in)."""
        children: list[Child] = []
        if self.local_stores is not None:
            for server in self.local_stores.servers:
                children.append(
                    Child(
                        server.name,
                        _pid_of(server),
                        server.exit_code,
                        server.restart,
                        server.log_path,
                    )
                )
        for service in (self.metadata, self.artifacts, self.web):
            if service is not None:
                children.append(
                    Child(
                        f"the {service.name} service",
                        _pid_of(service),
                        service.exited,
                        service.restart,
                        service.log_path,
                    )
                )
        return children
