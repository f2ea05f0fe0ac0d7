"""Per-document write locks inside one service process.

Why: FerretDB v1 does not apply an update atomically: it reads the matching document, applies the
update in Go and writes the result back by `_id` (measured here: 100 concurrent `$inc` on one
document left it at 4; 4 of 50 concurrent `find_one_and_update` calls won the same precondition).
The local wrapper now serializes FerretDB's writing commands (deploy/local/ferretdb/writelock.go),
which makes each write atomic, but a compare-and-set filter still costs a full collection scan
there: FerretDB only looks up a filter that is exactly `{_id: ...}`, anything more is read and
decoded document by document. So every read-modify-write holds this document's lock, and on
FerretDB the write filters on `_id` alone; on MongoDB the write also carries the document's
revision (`MongoDatabase.cas_filter`), which keeps several service processes safe there.
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
