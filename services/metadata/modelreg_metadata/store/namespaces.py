"""The namespace store: a namespace is one document, written with its audit event (audit/outbox.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from modelreg_api.errors import Aborted, AlreadyExists, NotFound
from modelreg_api.names import NamespaceName
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from modelreg_metadata.audit.outbox_entry import outbox_entry
from modelreg_metadata.domain import Namespace
from modelreg_metadata.store import EventFor
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import (
    Document,
    namespace_document,
    namespace_fields,
    namespace_from,
    namespace_key,
)


class MongoNamespaceStore:
    def __init__(self, database: MongoDatabase):
        self._db = database
        self._namespaces = database.namespaces

    async def insert_namespace(self, namespace: Namespace, request_key: str, event: EventFor) -> Namespace:
        entry = outbox_entry(event(None, namespace))
        doc = {**namespace_document(namespace), "request_key": request_key, "outbox": [entry]}
        try:
            await self._namespaces.insert_one(doc)
            self._db.committed("namespaces", doc["_id"], entry)
        except DuplicateKeyError:
            existing = await self._namespaces.find_one({"_id": doc["_id"]})
            if existing is not None and request_key and existing.get("request_key") == request_key:
                return namespace_from(existing)  # a retry of the create that made it
            raise AlreadyExists(f"namespace {namespace.name} already exists") from None
        return namespace

    async def ensure_namespace(self, namespace: Namespace, event: EventFor) -> None:
        if await self._namespaces.find_one({"_id": namespace_key(namespace.name.namespace)}, {"_id": True}):
            return
        entry = outbox_entry(event(None, namespace))
        doc = {**namespace_document(namespace), "request_key": "", "outbox": [entry]}
        with contextlib.suppress(DuplicateKeyError):  # created concurrently: that is all we wanted
            await self._namespaces.insert_one(doc)
            self._db.committed("namespaces", doc["_id"], entry)

    async def get_namespace(self, name: NamespaceName) -> Namespace:
        doc = await self._namespaces.find_one({"_id": namespace_key(name.namespace)})
        if doc is None:
            raise NotFound(f"namespace {name} not found")
        return namespace_from(doc)

    async def list_namespaces(self, limit: int, after: str | None) -> list[Namespace]:
        query: Document = {} if after is None else {"_id": {"$gt": after}}
        cursor = self._namespaces.find(query).sort("_id", ASCENDING).limit(limit)
        return [namespace_from(doc) async for doc in cursor]

    async def update_namespace(
        self,
        name: NamespaceName,
        mutate: Callable[[Namespace], Namespace],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Namespace, Namespace]:
        key = namespace_key(name.namespace)
        async with self._db.locks.hold(key):
            doc = await self._namespaces.find_one({"_id": key})
            if doc is None:
                raise NotFound(f"namespace {name} not found")
            before = namespace_from(doc)
            if expected_etag and expected_etag != before.etag:
                raise Aborted(
                    f"namespace {name} changed since it was read (etag mismatch); read it and retry"
                )
            after = mutate(before)
            entry = outbox_entry(event(before, after))
            result = await self._namespaces.update_one(
                self._db.cas_filter(key, doc.get("revision", 0)),
                {"$set": namespace_fields(after), "$inc": {"revision": 1}, "$push": {"outbox": entry}},
            )
            if result.matched_count != 1:
                raise Aborted(f"namespace {name} changed concurrently; retry")
            self._db.committed("namespaces", key, entry)
            return before, after
