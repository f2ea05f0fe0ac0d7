"""How a client talks to the registry: addresses, TLS, identity, deadlines, retries, cache, parallelism.

Read once from arguments and the environment, then passed down; nothing below this module looks
at `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.addresses import ServiceAddresses
from modelreg.channels import ClientTls

ACTOR_ENV = "MODELREG_ACTOR"
CACHE_DIR_ENV = "MODELREG_CACHE_DIR"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for calls that failed with UNAVAILABLE.

    UNAVAILABLE means the request did not reach a server that acted on it (connection refused,
    service draining on SIGTERM), so retrying is safe; every create also carries a request id
    that makes a repeat return the first result.
    """

    attempts: int = 6
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """The longest sleep before retry number `attempt` (1-based); jitter picks below it."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))


def default_cache_dir(env: Mapping[str, str]) -> Path:
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelreg"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    addresses: ServiceAddresses = field(default_factory=ServiceAddresses)
    # Recorded by the services as the author of every change, until authentication exists.
    actor: str = ""
    # Deadline of every unary call, in seconds.
    timeout: float = 30.0
    # Streams get `timeout` plus their size at this rate: long enough for a slow link, short
    # enough that a stalled transfer of a big file does not hang a CI job forever.
    min_transfer_bytes_per_second: float = 1 * MIB
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Content-addressed blobs (`blobs/sha256/<hex>`), partial downloads and the push journal.
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(os.environ))
    # Files transferred at once; each stream holds at most a few chunks in memory.
    parallel_files: int = 4
    chunk_bytes: int = 1 * MIB
    # TLS for both services' channels (by default: unless the address is loopback).
    tls: ClientTls = field(default_factory=ClientTls)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        """Addresses, actor, cache directory and TLS from `MODELREG_*` variables; defaults otherwise.

        Raises `modelreg.channels.TlsConfigError` when the TLS variables cannot work.
        """
        env = os.environ if env is None else env
        return cls(
            addresses=ServiceAddresses.from_environment(env),
            actor=env.get(ACTOR_ENV, ""),
            cache_dir=default_cache_dir(env),
            tls=ClientTls.from_environment(env),
        )

    def stream_timeout(self, size_bytes: int) -> float:
        return self.timeout + size_bytes / self.min_transfer_bytes_per_second
