"""Ports on 127.0.0.1 for the local servers: the kernel's pick, and pairs a fixed distance apart."""

from __future__ import annotations

import socket

from modelreg_local.stores.errors import StoreStartError

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the Go servers do: a port whose last connections sit in TIME_WAIT can be listened on again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def free_port_pair(offset: int = 10000) -> tuple[int, int]:
    """Free ports p and p+offset (SeaweedFS derives some gRPC ports as http port + 10000)."""
    for _ in range(200):
        port = free_port()
        if port + offset < 65536 and port_is_free(port + offset):
            return port, port + offset
    raise StoreStartError(f"found no free pair of ports {offset} apart on {LOCALHOST}")
