"""The fingerprints of requests made with a request id (registry/idempotency.py), one document
per request key in `request_fingerprints`: `{_id: request key, fingerprint}`. The unique `_id`
decides a race between two requests under one key: the first insert wins, the other reads it."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from modelreg_metadata.store.database import MongoDatabase


class MongoRequestStore:
    def __init__(self, database: MongoDatabase):
        self._fingerprints = database.request_fingerprints

    async def claim(self, request_key: str, fingerprint: str) -> str:
        try:
            await self._fingerprints.insert_one({"_id": request_key, "fingerprint": fingerprint})
        except DuplicateKeyError:
            recorded = await self._fingerprints.find_one({"_id": request_key})
            # Deleted in between (nothing deletes these today): this call's is the one recorded.
            return fingerprint if recorded is None else str(recorded["fingerprint"])
        return fingerprint
