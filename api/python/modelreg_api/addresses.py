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


class AddressError(ValueError):
    """An address list that gRPC cannot balance over (names a field or variable in its message)."""


def grpc_target(address: str) -> str:
    """The gRPC target for an address: `host:port` as it is, a scheme'd target (`dns:///svc:port`,
    `ipv4:a:port,b:port`) as it is, and a comma-separated list of IP addresses with ports (several
    replicas, e.g. `127.0.0.1:50051,127.0.0.1:50061`) as the `ipv4:`/`ipv6:` target gRPC takes.

    A list of host names has no such target: behind a Kubernetes headless Service use
    `dns:///name:port`, which resolves to every replica (channels balance round robin over them).
    """
    target = address.strip()
    if "," not in target or target.partition(":")[0] in ("dns", "ipv4", "ipv6"):
        return target
    parts = [part.strip() for part in target.split(",")]
    families = set()
    for part in parts:
        host, _, port = part.rpartition(":")
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            raise AddressError(
                f"{part[:64]!r} in an address list is not an IP address with a port; list IP "
                "addresses (a,b) or use one name that resolves to every replica (dns:///name:port)"
            ) from None
        if not port.isdigit():
            raise AddressError(f"{part[:64]!r} in an address list has no port")
    if len(families) != 1:
        raise AddressError("an address list mixes IPv4 and IPv6 addresses; use one family")
    return f"ipv{families.pop()}:{','.join(parts)}"


def _hosts(address: str) -> list[str]:
    """The host part(s) of a listen address or gRPC target (`host:port`, `[v6]:port`, a bare
    IPv6 address, `dns:[//authority/]host:port`, `ipv4:a:port,b:port`, `ipv6:[a]:port`)."""
    try:
        target = grpc_target(address)
    except AddressError:
        return []
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
