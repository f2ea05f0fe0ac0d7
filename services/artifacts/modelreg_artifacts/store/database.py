"""The MongoDB client of the artifact service (PyMongo's async API), created inside the event loop."""

from __future__ import annotations

from typing import Any

import pymongo
from modelreg_common.config import MongoTimeouts
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Document = dict[str, Any]


class ArtifactDatabase:
    def __init__(self, uri: str, database: str, timeouts: MongoTimeouts | None = None):
        # Bounded waits: with the database down, a call fails (UNAVAILABLE) after timeouts.timeout_ms.
        self.timeouts = timeouts or MongoTimeouts()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, appname="modelreg-artifacts", **self.timeouts.client_options()
        )
        db = self.client[database]
        self.db = db  # API tokens and role bindings are read from here too (modelreg_common.security)
        self.sessions: AsyncCollection[Document] = db["artifact_upload_sessions"]
        self.blobs: AsyncCollection[Document] = db["artifact_blobs"]
        # One document per digest being uploaded through sessions: which session sends its bytes.
        self.upload_leads: AsyncCollection[Document] = db["artifact_upload_leads"]

    async def ping(self) -> None:
        # The health probe's question (modelreg_common/store_health.py): short, whatever the bounds.
        with pymongo.timeout(self.timeouts.probe_seconds):
            await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()
