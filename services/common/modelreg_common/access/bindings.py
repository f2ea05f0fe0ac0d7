"""Role bindings as both services read them: every active binding, cached for a few seconds.

A binding is one document in `role_bindings` (written by the metadata service with its audit
event, see modelreg_metadata/store/access.py): `_id` `<namespace>|<principal>|<role>`, fields
`namespace` (an id, or `-` for every namespace), `principal`, `role` (an int, access/roles.py)
and `active` (a revoked binding stays as a tombstone that carries its event).

Bindings are few (people and teams, not requests), so each process holds all of them and reloads
them when they are older than `refresh_seconds`: a grant or revoke reaches every replica within
that time, the replica that made it at once (`invalidate`), and an authorization decision costs
a dict lookup. A decision that would refuse first reads the bindings' epoch (one `_id` read: a
counter every grant and revoke increments after its write) and, when it moved, the bindings: a
grant holds on every replica at once; only a revocation waits for the refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from modelreg_common.access.roles import Role

Document = dict[str, Any]
EVERY_NAMESPACE = "-"
EPOCH_KEY = "epoch"  # the document of the epoch counter (binding keys always hold a `|`)
COLLECTION = "role_bindings"

# subject -> namespace (or "-") -> role
_Table = dict[str, dict[str, Role]]


def binding_key(namespace: str, principal: str, role: Role) -> str:
    return f"{namespace}|{principal}|{role.label}"


class RoleDirectory:
    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._collection = collection
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._table: _Table = {}
        self._loaded_at: float | None = None
        self._loaded_epoch = 0
        self._loading: asyncio.Future[None] | None = None

    def invalidate(self) -> None:
        self._loaded_at = None

    async def roles_of(self, subjects: Iterable[str]) -> dict[str, Role]:
        """The highest role each namespace (and `-`) grants to any of `subjects`."""
        await self._fresh(self._refresh_seconds)
        return self._lookup(subjects)

    async def newer_roles_of(self, subjects: Iterable[str]) -> dict[str, Role] | None:
        """The roles after reading the bindings again if they changed since the last read, else
        None (one point read of the epoch)."""
        if self._loaded_at is not None and await self._epoch() == self._loaded_epoch:
            return None
        await self._fresh(0)
        return self._lookup(subjects)

    async def _epoch(self) -> int:
        doc = await self._collection.find_one({"_id": EPOCH_KEY}, {"value": 1})
        return int(doc["value"]) if doc else 0

    def _lookup(self, subjects: Iterable[str]) -> dict[str, Role]:
        roles: dict[str, Role] = {}
        for subject in subjects:
            for namespace, role in self._table.get(subject, {}).items():
                if role > roles.get(namespace, 0):
                    roles[namespace] = role
        return roles

    async def _fresh(self, max_age: float) -> None:
        if self._loaded_at is not None and self._clock() - self._loaded_at < max_age:
            return
        if self._loading is None:  # one reload at a time; concurrent callers wait for it
            self._loading = asyncio.ensure_future(self._load())
        loading = self._loading
        try:
            await asyncio.shield(loading)
        finally:
            if self._loading is loading and loading.done():
                self._loading = None

    async def _load(self) -> None:
        started = self._clock()
        epoch = await self._epoch()  # before the bindings: a change after it shows as a newer epoch
        table: _Table = {}
        async for doc in self._collection.find({"active": True}, {"namespace": 1, "principal": 1, "role": 1}):
            try:
                role = Role(doc["role"])
            except (KeyError, ValueError):
                continue  # a document of a newer version with a role this one does not know
            per_subject = table.setdefault(doc["principal"], {})
            if role > per_subject.get(doc["namespace"], 0):
                per_subject[doc["namespace"]] = role
        self._table = table
        self._loaded_at = started
        self._loaded_epoch = epoch
