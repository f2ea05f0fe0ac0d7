"""The local servers of both stores under one data root, started together and stopped in reverse."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from modelreg_local.stores.endpoints import ExternalStores, StoreEndpoints
from modelreg_local.stores.ferretdb import FerretDBServer
from modelreg_local.stores.seaweedfs import SeaweedS3Server


class LocalStores:
    """FerretDB and SeaweedFS under one data root (<root>/ferretdb, <root>/seaweedfs), as a context manager.

    A store named in `external` is not started; its external address is passed through instead.
    mongo_port 0 means FerretDB's Unix socket (this user only), another port TCP on 127.0.0.1 (every local
    user). s3_port 0 means the port used last time on this root if it is free, else a free one.
    """

    def __init__(
        self,
        data_root: Path,
        *,
        mongo_port: int = 0,
        s3_port: int = 0,
        external: ExternalStores | None = None,
        ferretdb_binary: Path | None = None,
        weed_binary: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_root = Path(data_root).resolve()
        self.external = external if external is not None else ExternalStores()
        self.startup_timeout = startup_timeout
        self.ferretdb: FerretDBServer | None = None
        self.seaweedfs: SeaweedS3Server | None = None
        if self.external.mongodb_uri is None:
            self.ferretdb = FerretDBServer(
                self.data_root / "ferretdb", port=mongo_port, binary=ferretdb_binary
            )
        if self.external.s3 is None:
            self.seaweedfs = SeaweedS3Server(self.data_root / "seaweedfs", port=s3_port, binary=weed_binary)
        self._endpoints: StoreEndpoints | None = None

    @property
    def servers(self) -> list[FerretDBServer | SeaweedS3Server]:
        return [s for s in (self.ferretdb, self.seaweedfs) if s is not None]

    @property
    def endpoints(self) -> StoreEndpoints:
        if self._endpoints is None:
            raise RuntimeError("LocalStores is not started")
        return self._endpoints

    def start(self) -> StoreEndpoints:
        """Start every local server, then wait for all of them to answer (they boot in parallel)."""
        try:
            for server in self.servers:
                server.start()
            for server in self.servers:
                server.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        mongodb_uri = self.ferretdb.uri if self.ferretdb is not None else self.external.mongodb_uri
        s3 = self.seaweedfs.settings if self.seaweedfs is not None else self.external.s3
        if mongodb_uri is None or s3 is None:  # unreachable: __init__ sets one of each
            raise RuntimeError("LocalStores has neither a local nor an external store of each kind")
        self._endpoints = StoreEndpoints.from_parts(mongodb_uri, s3)
        return self._endpoints

    def stop(self, timeout: float = 10.0) -> None:
        self._endpoints = None
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop(timeout)
            except Exception as exc:  # stop the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
