"""The MongoDB client of the artifact service (PyMongo's async API), created inside the event loop."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Document = dict[str, Any]


class ArtifactDatabase:
    def __init__(self, uri: str, database: str):
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="modelreg-artifacts"
        )
        db = self.client[database]
        self.db = db  # API tokens and role bindings are read from here too (modelreg_common.security)
        self.sessions: AsyncCollection[Document] = db["artifact_upload_sessions"]
        self.blobs: AsyncCollection[Document] = db["artifact_blobs"]
        # One document per digest being uploaded through sessions: which session sends its bytes.
        self.upload_leads: AsyncCollection[Document] = db["artifact_upload_leads"]

    async def close(self) -> None:
        await self.client.close()
