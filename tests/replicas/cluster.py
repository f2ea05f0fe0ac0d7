"""Test-side helpers for the multi-replica cluster (modelreg_local/replicas.py)."""

from __future__ import annotations

import grpc
from modelreg_api.channels import ClientTls, open_channel
from modelreg_local.replicas import ARTIFACT_REPLICAS, METADATA_REPLICAS, Cluster

__all__ = ["ARTIFACT_REPLICAS", "METADATA_REPLICAS", "TEST_ENV", "Cluster", "bearer", "channel"]

TEST_ENV = {
    "MODELREG_LOG_LEVEL": "DEBUG",
    # Leftovers of crashed writers are swept up quickly (the kill matrix waits for them).
    "MODELREG_EVENT_SWEEP_SECONDS": "1",
    # Garbage collection without a grace period: the strictest test of what it keeps.
    "MODELREG_GC_GRACE_SECONDS": "0",
}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def channel(address: str) -> grpc.aio.Channel:
    """A plaintext channel balancing round robin over every address in `address` (a list)."""
    return open_channel(address, ClientTls(mode="off"), [("grpc.max_receive_message_length", 8 << 20)])
