"""The MongoDB client of the artifact service (PyMongo's async API), created inside the event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Document = dict[str, Any]


def now() -> datetime:
    # MongoDB stores milliseconds; truncating here keeps what we return equal to what we read back.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class ArtifactDatabase:
    def __init__(self, uri: str, database: str):
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="modelreg-artifacts"
        )
        db = self.client[database]
        self.db = db  # API tokens and role bindings are read from here too (modelreg_common.security)
        self.sessions: AsyncCollection[Document] = db["artifact_upload_sessions"]
        self.blobs: AsyncCollection[Document] = db["artifact_blobs"]

    async def close(self) -> None:
        await self.client.close()
