"""How a client talks to the registry: addresses, TLS, credential, deadlines, retries, cache,
parallelism.

Read once from arguments and the environment, then passed down; nothing below this module looks
at `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelreg_api.addresses import ServiceAddresses
from modelreg_api.channels import ClientTls

from modelreg import credentials
from modelreg.credentials import Credential

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
    # Sent as `authorization: Bearer <token>` on every call; empty: no credential (the services
    # answer UNAUTHENTICATED). Calls act as the token's principal.
    token: str = field(default="", repr=False)
    # Where the token came from (`MODELREG_TOKEN`, `credentials file ...`), for error messages.
    token_source: str = ""
    # Written by `modelreg login`, keyed by metadata address (modelreg.credentials).
    credentials_file: Path = field(default_factory=lambda: credentials.credentials_path(os.environ))
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
    def from_environment(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        metadata_addr: str | None = None,
        artifact_addr: str | None = None,
        credential: Credential | None = None,
    ) -> ClientSettings:
        """Addresses, credential, cache directory and TLS from `MODELREG_*` variables; defaults
        otherwise.

        Addresses given here win over the environment. The credential is the one given, else the
        first source of `modelreg.credentials` that is set, for the final metadata address (the
        credentials file is keyed by it). Raises `CredentialError` for a source that is set but
        unusable, and `modelreg_api.channels.TlsConfigError` when the TLS variables cannot work.
        """
        env = os.environ if env is None else env
        found = ServiceAddresses.from_environment(env)
        addresses = ServiceAddresses(
            metadata=metadata_addr or found.metadata, artifacts=artifact_addr or found.artifacts
        )
        if credential is None:
            credential = credentials.find_credential(env, addresses.metadata)
        return cls(
            addresses=addresses,
            token=credential.token if credential else "",
            token_source=credential.source if credential else "",
            credentials_file=credentials.credentials_path(env),
            cache_dir=default_cache_dir(env),
            tls=ClientTls.from_environment(env),
        )

    def stream_timeout(self, size_bytes: int) -> float:
        return self.timeout + size_bytes / self.min_transfer_bytes_per_second
