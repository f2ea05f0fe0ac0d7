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
from modelreg_local.credentials import issue_token
from modelreg_local.stack import METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import metadata_service_pb2_grpc
from pymongo import AsyncMongoClient

from tests.support import ISSUER, credential_chooser, unique

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
        self._tokens: dict[str, str] = {}  # principal -> its token on this process's database
        self.fault = ""
        self._primed = False
        self.process: ServiceProcess | None = None

    def credential(self, presented: str | None) -> str:
        """This process's credential for the principal of `presented` (the admin's for none)."""
        principal = ISSUER.principal_of(presented) if presented else None
        trips_any_change = bool(self.fault) and "@" not in self.fault
        if principal is None or (trips_any_change and principal not in self._tokens):
            # Issuing a token is a change with an event: under a fault that any change trips,
            # it would be the one, so the admin acts instead.
            return self.admin_token
        if principal not in self._tokens:
            self._tokens[principal] = issue_token(self.address, self.admin_token, principal, [("-", "admin")])
        return self._tokens[principal]

    def start(self, fault: str = "") -> None:
        if fault and not self._primed:
            # The first start stores the bootstrap admin (a change with events): not under a fault.
            self.start()
            self.stop()
        self._primed = True
        self.fault = fault
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
        """A client of the process. It has a database of its own, so tokens of its own: a call
        made with a test principal's credential (tests/support.py) goes with the same
        principal's token here, and a call without one as the bootstrap admin (the stack's
        admin file is this process's too: it stores that admin on its database at its first
        start)."""
        async with grpc.aio.insecure_channel(
            self.address, interceptors=credential_chooser(self.credential)
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
