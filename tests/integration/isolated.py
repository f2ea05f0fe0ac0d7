"""A metadata service process of a test's own: its own database, restartable, with or without a
fault (`MODELREG_FAULT_INJECTION`, services/metadata/modelreg_metadata/faults.py).

For tests that kill or restart the service, or read its database directly: the session's
service and its in-process replica never see these writes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from modelreg_local.stack import METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import metadata_service_pb2_grpc
from pymongo import AsyncMongoClient

from tests.support import default_credential, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

CRASHED = 137  # the exit status of a process the fault injection ended


class Isolated:
    """A metadata process on a database of its own, restartable with or without a fault."""

    def __init__(self, stack: LocalStack, log_dir: Path):
        assert stack.metadata is not None
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {
            **stack.metadata.env,
            "MODELREG_METADATA_ADDR": self.address,
            "MODELREG_MONGODB_DATABASE": unique("crash").replace("-", "_"),
        }
        self.log_dir = log_dir
        self.admin_token = stack.admin_token()
        self.process: ServiceProcess | None = None

    def start(self, fault: str = "") -> None:
        env = dict(self.env)
        if fault:
            env["MODELREG_FAULT_INJECTION"] = fault
        self.process = ServiceProcess(
            "metadata-crash",
            module="modelreg_metadata",
            service=METADATA_SERVICE,
            address=self.address,
            env=env,
            log_dir=self.log_dir,
        )
        self.process.start()
        self.process.wait_healthy()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL, no goodbye: connections just drop."""
        assert self.process is not None
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait_exited(timeout=30)

    def wait_crashed(self) -> int | None:
        assert self.process is not None
        return self.process.wait_exited(timeout=30)

    @asynccontextmanager
    async def stub(self) -> AsyncIterator[MetadataStub]:
        """A client acting as the bootstrap admin (the stack's admin file is this process's too:
        on its own database it stores that admin at its first start)."""
        admin = self.admin_token
        async with grpc.aio.insecure_channel(
            self.address, interceptors=default_credential(lambda: admin)
        ) as channel:
            yield metadata_service_pb2_grpc.MetadataServiceStub(channel)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[Any]:
        """The process's own database, read and written directly (not through the service)."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.env["MODELREG_MONGODB_URI"])
        try:
            yield client[self.env["MODELREG_MONGODB_DATABASE"]]
        finally:
            await client.close()

    async def on_ferretdb(self) -> bool:
        async with self.database() as db:
            return "ferretdbVersion" in await db.client.admin.command("buildInfo")
