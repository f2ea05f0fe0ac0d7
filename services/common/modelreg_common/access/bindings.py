"""Role bindings as both services read them: every active binding, cached for a few seconds.

A binding is one document in `role_bindings` (written by the metadata service with its audit
event, see modelreg_metadata/store/access.py): `_id` `<namespace>|<principal>|<role>`, fields
`namespace` (an id, or `-` for every namespace), `principal`, `role` (an int, access/roles.py)
and `active` (a revoked binding stays as a tombstone that carries its event).

Bindings are few (people and teams, not requests), so each process holds all of them and reloads
them when they are older than `refresh_seconds`: a grant or revoke reaches every replica within
that time, the replica that made it at once (`invalidate`), and an authorization decision costs
a dict lookup.
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
        self._loading: asyncio.Future[None] | None = None

    def invalidate(self) -> None:
        self._loaded_at = None

    async def roles_of(self, subjects: Iterable[str]) -> dict[str, Role]:
        """The highest role each namespace (and `-`) grants to any of `subjects`."""
        await self._fresh()
        roles: dict[str, Role] = {}
        for subject in subjects:
            for namespace, role in self._table.get(subject, {}).items():
                if role > roles.get(namespace, 0):
                    roles[namespace] = role
        return roles

    async def _fresh(self) -> None:
        if self._loaded_at is not None and self._clock() - self._loaded_at < self._refresh_seconds:
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
