"""The one place that knows where the registry's services listen.

Servers, the local stack, the SDK and the CLI read the same variables with the same defaults,
so `make run` and every client agree without configuration.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

METADATA_ADDR_ENV = "MODELREG_METADATA_ADDR"
ARTIFACT_ADDR_ENV = "MODELREG_ARTIFACT_ADDR"
DEFAULT_METADATA_ADDR = "127.0.0.1:50051"
DEFAULT_ARTIFACT_ADDR = "127.0.0.1:50052"


@dataclass(frozen=True, slots=True)
class ServiceAddresses:
    metadata: str = DEFAULT_METADATA_ADDR
    artifacts: str = DEFAULT_ARTIFACT_ADDR

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ServiceAddresses:
        env = os.environ if env is None else env
        return cls(
            metadata=env.get(METADATA_ADDR_ENV) or DEFAULT_METADATA_ADDR,
            artifacts=env.get(ARTIFACT_ADDR_ENV) or DEFAULT_ARTIFACT_ADDR,
        )


def is_loopback(address: str) -> bool:
    """True when `address` (a gRPC target) can only reach this machine: a loopback IP,
    `localhost`, or a Unix socket. `dns:///`, `ipv4:` and `ipv6:` prefixes are understood."""
    target = address.strip()
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(prefix):
            target = target.removeprefix(prefix)
            break
    if target.startswith("["):  # [::1]:50051
        host = target[1 : target.find("]")] if "]" in target else ""
    elif target.count(":") > 1:  # a bare IPv6 address without a port
        host = target
    else:
        host = target.rpartition(":")[0] if ":" in target else target
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
