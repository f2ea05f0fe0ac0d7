"""Reading service settings from the environment, once, with errors a person can act on.

Each service has one frozen settings dataclass built by `from_environment`; every problem is
collected so a misconfigured deployment learns all of them at the first start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg_api.addresses import AddressError, grpc_target

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_MONGODB_SCHEMES = ("mongodb", "mongodb+srv")


@dataclass(frozen=True)
class S3Settings:
    """How to reach one S3 server (the arguments of `minio.Minio`) and the bucket the blobs go to."""

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = False
    region: str | None = None
    bucket: str = "modelreg"
    # How the server checks what we send: "crc32c" (a checksum header) or "sha256" (the SDK's
    # own way: the payload's SHA-256 in the signature over http, Content-MD5 over https).
    payload_checksum: str = "crc32c"


@dataclass(frozen=True)
class MongoTimeouts:
    """How long a call waits for the database before it fails (UNAVAILABLE, modelreg_common/outages.py).

    `timeout_ms` bounds finding a server and opening a connection: with the database down, a call
    fails after about this long. `operation_timeout_ms` bounds the wait for one reply on an open
    connection (a hung server) and for a free connection in the pool (an overloaded one); it is
    longer, because a big search on FerretDB, or a queue of writes behind its write lock, may
    legitimately take seconds.
    """

    timeout_ms: int = 3000
    operation_timeout_ms: int = 30000

    @classmethod
    def read(cls, read: EnvReader) -> MongoTimeouts:
        return cls(
            timeout_ms=read.integer("MODELREG_MONGODB_TIMEOUT_MS", 3000, minimum=100, maximum=600_000),
            operation_timeout_ms=read.integer(
                "MODELREG_MONGODB_OPERATION_TIMEOUT_MS", 30000, minimum=100, maximum=3_600_000
            ),
        )

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of `AsyncMongoClient` that apply these bounds."""
        return {
            "serverSelectionTimeoutMS": self.timeout_ms,
            "connectTimeoutMS": self.timeout_ms,
            "waitQueueTimeoutMS": self.operation_timeout_ms,
            "socketTimeoutMS": self.operation_timeout_ms,
        }

    @property
    def probe_seconds(self) -> float:
        """The health probe's own limit: short, so health turns quickly, but never above the bound."""
        return min(1.0, self.timeout_ms / 1000)


def parse_flag(text: str) -> bool | None:
    """The boolean a variable's text spells (1/0, true/false, yes/no, on/off, any case); else None."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def mongodb_uri_problem(key: str, uri: str) -> str | None:
    """What is wrong with a MongoDB connection string, or None; the URI (it may hold a password)
    is not repeated in the answer."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in _MONGODB_SCHEMES:
        return f"{key} must start with mongodb:// or mongodb+srv://"
    hosts = rest.rpartition("@")[2].partition("/")[0].partition("?")[0]
    if not hosts:
        return f"{key} names no host"
    return None


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class EnvReader:
    """Typed access to environment variables that records problems instead of failing on the first."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self.problems: list[str] = []

    def text(self, key: str, default: str | None = None) -> str:
        value = self._env.get(key, "").strip()
        if value:
            return value
        if default is None:
            self.problems.append(f"{key} is required")
            return ""
        return default

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self._env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{key}={raw!r} is not an integer")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{key}={value} is outside [{minimum}, {maximum}]")
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self._env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{key}={raw!r} is not a number")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{key}={value} is outside [{minimum}, {maximum}]")
        return value

    def flag(self, key: str, default: bool) -> bool:
        raw = self._env.get(key, "").strip().lower()
        if not raw:
            return default
        value = parse_flag(raw)
        if value is None:
            self.problems.append(f"{key}={raw!r} is not a boolean (true/false)")
            return default
        return value

    def address(self, key: str, default: str | None = None) -> str:
        """A `host:port` to listen on or connect to; required when there is no default."""
        value = self.text(key, default)
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problems.append(f"{key}={value!r} is not host:port")
        return value

    def target(self, key: str, default: str) -> str:
        """Where a client connects: `host:port`, a comma-separated list of replicas' IP addresses,
        or a gRPC target such as `dns:///name:port` (modelreg_api.addresses.grpc_target)."""
        value = self.text(key, default)
        if "," in value or value.startswith(("dns:", "ipv4:", "ipv6:")):
            try:
                grpc_target(value)
            except AddressError as exc:
                self.problems.append(f"{key}: {exc}")
            return value
        return self.address(key, default)

    def mongodb_uri(self, key: str) -> str:
        """A required MongoDB connection string (mongodb:// or mongodb+srv://, with a host)."""
        value = self.text(key)
        problem = mongodb_uri_problem(key, value) if value else None
        if problem is not None:
            self.problems.append(problem)
        return value

    def log_level(self, key: str, default: str = "INFO") -> str:
        value = self.text(key, default).upper()
        if value not in _LOG_LEVELS:
            self.problems.append(f"{key}={value!r} is not one of {', '.join(_LOG_LEVELS)}")
        return value

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
