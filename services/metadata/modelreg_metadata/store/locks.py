"""Per-document write locks inside one service process.

Why: FerretDB v1 does not apply an update atomically. It reads the matching document, applies the
update in Go and writes the result back by `_id`, so two concurrent compare-and-set updates can
both match (measured: 100 concurrent `$inc` on one document left it at 4, and 4 of 50 concurrent
`find_one_and_update` calls won the same precondition). Only unique-index inserts are atomic.
Every read-modify-write of a document therefore holds this document's lock, so within a process
writes to one document never interleave. Across processes, MongoDB's atomic single-document
updates with a revision condition keep them safe (see `MongoDatabase.cas_filter`); FerretDB
deployments run one metadata process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DocumentLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # forget idle locks so the table stays small
                del self._users[key]
                del self._locks[key]
