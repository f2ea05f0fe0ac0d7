"""API tokens as both services read them, cached for a few seconds.

A token is one document in `api_tokens` (written by the metadata service, with its audit event:
modelreg_metadata/store/access.py): `_id` the token id, `principal`, `secret_sha256`,
`namespaces` and `max_role` (the restriction), `expire_time`, `revoke_time` (null until revoked),
`last_used_time`.

Every lookup by id is cached for `ttl_seconds` (found or not), so a busy client costs a dict
lookup, and a revocation reaches every replica within that time (the replica that revoked forgets
at once). `last_used_time` is written at most once per `touch_seconds` per token and process, off
the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from modelreg_common.access.roles import Role
from modelreg_common.identity.caller import Restriction

Document = dict[str, Any]
COLLECTION = "api_tokens"
_MAX_CACHED = 10_000

log = structlog.get_logger("modelreg.identity")


@dataclass(frozen=True, slots=True)
class StoredToken:
    token_id: str
    principal: str
    secret_sha256: str
    restriction: Restriction
    expire_time: datetime
    revoke_time: datetime | None


def restriction_from(doc: Document) -> Restriction:
    max_role = doc.get("max_role") or 0
    return Restriction(frozenset(doc.get("namespaces") or ()), Role(max_role) if max_role else None)


def stored_token_from(doc: Document) -> StoredToken:
    return StoredToken(
        token_id=doc["_id"],
        principal=doc["principal"],
        secret_sha256=doc["secret_sha256"],
        restriction=restriction_from(doc),
        expire_time=doc["expire_time"],
        revoke_time=doc.get("revoke_time"),
    )


class TokenDirectory:
    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        ttl_seconds: float = 2.0,
        touch_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._collection = collection
        self._ttl = ttl_seconds
        self._touch_seconds = touch_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, StoredToken | None]] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._touches: set[asyncio.Task[None]] = set()

    async def find(self, token_id: str) -> StoredToken | None:
        now = self._clock()
        cached = self._cache.get(token_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        doc = await self._collection.find_one({"_id": token_id})
        token = stored_token_from(doc) if doc is not None else None
        self._cache[token_id] = (now, token)
        self._cache.move_to_end(token_id)
        while len(self._cache) > _MAX_CACHED:
            self._cache.popitem(last=False)
        return token

    def forget(self, token_id: str) -> None:
        self._cache.pop(token_id, None)

    def touch(self, token_id: str) -> None:
        """Record that the token was used, at most once per `touch_seconds`, in the background."""
        now = self._clock()
        last = self._touched.get(token_id)
        if last is not None and now - last < self._touch_seconds:
            return
        self._touched[token_id] = now
        if len(self._touched) > _MAX_CACHED:
            self._touched.clear()
        task = asyncio.create_task(self._write_last_used(token_id))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _write_last_used(self, token_id: str) -> None:
        moment = datetime.now(UTC)
        try:
            # Not a change of the token (no event, no revision): a usage statistic.
            await self._collection.update_one({"_id": token_id}, {"$set": {"last_used_time": moment}})
        except PyMongoError:
            log.warning("could not record a token's last use", token_id=token_id, exc_info=True)

    async def close(self) -> None:
        for task in list(self._touches):
            task.cancel()
