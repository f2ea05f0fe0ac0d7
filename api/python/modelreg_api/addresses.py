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


def _hosts(address: str) -> list[str]:
    """The host part(s) of a listen address or gRPC target (`host:port`, `[v6]:port`, a bare
    IPv6 address, `dns:[//authority/]host:port`, `ipv4:a:port,b:port`, `ipv6:[a]:port`)."""
    target = address.strip()
    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("dns", "ipv4", "ipv6"):
        target = rest
        if target.startswith("//"):  # dns://resolver/host:port names a resolver, not the host
            target = target[2:].partition("/")[2]
    hosts = []
    for part in target.split(",") if scheme in ("ipv4", "ipv6") else [target]:
        if part.startswith("["):
            hosts.append(part[1 : part.find("]")])
            continue
        host, sep, port = part.rpartition(":")
        try:
            ipaddress.ip_address(part)  # a bare IPv6 address: its colons are not a port separator
            host = part
        except ValueError:
            host = host if sep and port.isdigit() else part
        hosts.append(host)
    return hosts


def is_loopback(address: str) -> bool:
    """Whether every host `address` names is on this machine only: 127.0.0.0/8, ::1 or localhost.

    The wildcards (0.0.0.0, [::], an empty host) listen on every interface, so they are not.
    """

    def loopback(host: str) -> bool:
        if host.lower().rstrip(".") == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    hosts = _hosts(address)
    return bool(hosts) and all(loopback(host) for host in hosts)
