"""The MongoDB stores (PyMongo's async API), within the subset FerretDB v1 supports.

No multi-document transactions exist there, so every invariant lives in one document or is
guarded by a unique index:
- every resource's `_id` is its name (store/documents.py), so names are unique by construction
  and every point read and write is by `_id`;
- version numbers: the next number is the model's `latest_version_number` + 1 and the version is
  inserted under that `_id`; a duplicate-key error means another writer took it, so we try the
  next. Numbers come only from successful inserts, so they are gap-free even if a writer dies;
- aliases live inside their model's document: a move is one single-document write, and reading a
  version by alias is two `_id` reads;
- every read-modify-write holds the document's in-process lock (store/locks.py) and, on MongoDB,
  also conditions the write on the document's revision (compare-and-set), so no update is lost;
- metric histories live in their own documents (`metric_series`), 1000 points per document;
- a purged version leaves a tombstone under its `_id` (`MongoVersionStore.purge_version`), so its
  number stays taken;
- every write of a namespace, model or version document also pushes the change's audit event
  into that document's `outbox` (store/outbox.py), in the same single-document write.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from modelreg.names import AliasName, ModelName, ModelVersionName, NamespaceName
from modelreg_common.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, DeleteOne, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from modelreg_metadata.domain import (
    MAX_ALIASES_PER_MODEL,
    Alias,
    AliasProtection,
    MetricPoint,
    Model,
    ModelVersion,
    Namespace,
)
from modelreg_metadata.faults import Faults
from modelreg_metadata.store import EventFor, Page
from modelreg_metadata.store.documents import (
    Document,
    alias_entry,
    aliases_from,
    aliases_of_version,
    encoded_map,
    model_document,
    model_fields,
    model_from,
    model_key,
    namespace_document,
    namespace_fields,
    namespace_from,
    namespace_key,
    pairs,
    protection_entry,
    protections_from,
    version_document,
    version_fields,
    version_from,
    version_key,
)
from modelreg_metadata.store.events import EventFeed, MongoEventLog
from modelreg_metadata.store.locks import DocumentLocks
from modelreg_metadata.store.outbox import MAX_UPDATES_PER_COMMAND, Relay, outbox_entry
from modelreg_metadata.store.query import keyset_after, read_path
from modelreg_metadata.store.replica import Replica, merged

MAX_NUMBER_ATTEMPTS = 1000
DUPLICATE_KEY = 11000
# Under concurrent creates (the last batch had more than one), the group commit waits this long
# for more before writing: one insert, one counter update and one event insert then serve several
# creates, which is most of what a create costs on FerretDB (measured: about half the CPU).
GROUP_COMMIT_LINGER_SECONDS = 0.005
# With the replica (one writing process), model counters reach the database at most this late.
COUNTER_SECONDS = 1.0
POINTS_PER_SERIES_DOCUMENT = 1000
# What a purged version's tombstone keeps (see MongoVersionStore.purge_version), besides
# `revision`, `outbox` and, until its history is deleted, `metric_meta`.
TOMBSTONE_FIELDS = ("namespace", "model_id", "number", "uid", "model_uid", "request_key")

log = structlog.get_logger("modelreg.metadata.store")


def now() -> datetime:
    # MongoDB stores milliseconds; truncating here keeps what we return equal to what we read back.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_etag() -> str:
    return uuid.uuid4().hex[:16]


class MongoDatabase:
    """Owns the client, the collections and the per-document locks; created inside the event loop."""

    def __init__(
        self,
        uri: str,
        database: str,
        *,
        replica: bool = True,
        faults: Faults | None = None,
        sweep_seconds: float = 10.0,
    ):
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="modelreg-metadata", maxPoolSize=200
        )
        self.db: AsyncDatabase[Document] = self.client[database]
        self.namespaces: AsyncCollection[Document] = self.db["namespaces"]
        self.models: AsyncCollection[Document] = self.db["models"]
        self.versions: AsyncCollection[Document] = self.db["model_versions"]
        self.series: AsyncCollection[Document] = self.db["metric_series"]
        self.requests: AsyncCollection[Document] = self.db["requests"]
        self.events: AsyncCollection[Document] = self.db["events"]
        self.relay_state: AsyncCollection[Document] = self.db["event_relay"]  # store/outbox.py
        self.event_log = MongoEventLog(self.events, EventFeed())
        self._faults = faults or Faults()
        self._sweep_seconds = sweep_seconds
        self.relay = self._new_relay(single_writer=False)
        self.locks = DocumentLocks()
        # FerretDB v1 neither applies updates atomically nor uses secondary indexes (it filters in
        # Go after reading every document; only a lone `_id` equality reaches SQLite). There, a
        # filter with anything besides `_id` would scan the collection, so writes filter on `_id`
        # alone and rely on the in-process locks; MongoDB also gets the revision condition.
        self.atomic_updates = True
        self._want_replica = replica
        self.replica: Replica | None = None
        self.before_close: list[Callable[[], Awaitable[None]]] = []  # stores' last writes

    def _new_relay(self, *, single_writer: bool) -> Relay:
        relay = Relay(
            {"namespaces": self.namespaces, "models": self.models, "model_versions": self.versions},
            self.events,
            self.event_log,
            self.relay_state,
            faults=self._faults,
            sweep_seconds=self._sweep_seconds,
            single_writer=single_writer,
        )
        self.event_log.placement = relay.placed
        return relay

    async def start(self) -> None:
        info = await self.client.admin.command("buildInfo")
        self.atomic_updates = "ferretdbVersion" not in info
        # FerretDB deployments run one metadata process (store/locks.py): its relay is the only one.
        self.relay = self._new_relay(single_writer=not self.atomic_updates)
        if not self.atomic_updates and self._want_replica:
            self.replica = Replica()  # one process is the only writer: see store/replica.py
        await self.ensure_indexes()
        await self.relay.start()

    def cas_filter(self, key: str, revision: int) -> Document:
        return {"_id": key, "revision": revision} if self.atomic_updates else {"_id": key}

    async def ensure_indexes(self) -> None:
        # Unique indexes keep invariants everywhere; the query indexes serve MongoDB (FerretDB v1
        # accepts but never uses them, and rejects wildcard indexes).
        indexes: list[tuple[AsyncCollection[Document], IndexModel]] = [
            (self.versions, IndexModel([("request_key", ASCENDING)], unique=True, name="request_key")),
            # No event twice in the trail, even when a crash makes the relay place it again.
            (self.events, IndexModel([("event_id", ASCENDING)], unique=True, name="event_id")),
        ]
        if self.atomic_updates:
            indexes += [
                (self.events, IndexModel([("seq", ASCENDING)], unique=True, name="seq")),
                (
                    self.events,
                    IndexModel([("namespace", ASCENDING), ("seq", ASCENDING)], name="by_namespace"),
                ),
                (
                    self.events,
                    IndexModel(
                        [("namespace", ASCENDING), ("model_id", ASCENDING), ("seq", ASCENDING)],
                        name="by_model",
                    ),
                ),
                (self.events, IndexModel([("resource", ASCENDING), ("seq", ASCENDING)], name="by_resource")),
                (self.events, IndexModel([("actor", ASCENDING), ("seq", ASCENDING)], name="by_actor")),
                (self.events, IndexModel([("time", ASCENDING)], name="by_time")),
                # The relay's sweep finds leftover outbox entries by their time.
                (self.namespaces, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.models, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.versions, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (
                    self.models,
                    IndexModel([("namespace", ASCENDING), ("model_id", ASCENDING)], name="by_namespace"),
                ),
                (
                    self.models,
                    IndexModel([("namespace", ASCENDING), ("update_time", DESCENDING)], name="recent"),
                ),
                (self.models, IndexModel([("l.$**", ASCENDING)], name="labels")),
                (
                    self.versions,
                    IndexModel(
                        [("namespace", ASCENDING), ("model_id", ASCENDING), ("number", ASCENDING)],
                        name="by_model",
                    ),
                ),
                (
                    self.versions,
                    IndexModel([("namespace", ASCENDING), ("create_time", DESCENDING)], name="recent"),
                ),
                (
                    self.versions,
                    IndexModel([("model_uid", ASCENDING), ("state", ASCENDING)], name="by_state"),
                ),
                (self.versions, IndexModel([("t.$**", ASCENDING)], name="tags")),
                (self.versions, IndexModel([("m.$**", ASCENDING)], name="metrics")),
                (self.versions, IndexModel([("p.$**", ASCENDING)], name="params")),
                # The retention's question (MongoVersionStore.purgeable), both halves of it.
                (
                    self.versions,
                    IndexModel([("deleted", ASCENDING), ("update_time", ASCENDING)], name="deleted"),
                ),
                (self.versions, IndexModel([("purged", ASCENDING)], name="purged")),
                # Multikey: the garbage collector's CheckBlobReferences batches (store/blob_references.py).
                (self.versions, IndexModel([("files.sha256", ASCENDING)], name="file_digests")),
            ]
        for collection, index in indexes:
            # One index per command: FerretDB v1.24 panics on a multi-index createIndexes when the
            # indexes already exist (every restart), while one at a time is an idempotent no-op.
            await collection.create_indexes([index])

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def stop_feeds(self) -> None:
        self.event_log.feed.close()

    async def close(self) -> None:
        for last_write in self.before_close:
            try:
                await last_write()
            except PyMongoError:
                log.warning("a write before closing failed", exc_info=True)
        await self.relay.stop()
        await self.client.close()

    def committed(self, collection: str, key: str, entry: Document) -> None:
        self.relay.committed(collection, key, entry)


async def _page(
    collection: AsyncCollection[Document],
    conditions: list[Document],
    sort: list[tuple[str, bool]],
    limit: int,
    after: tuple[list[Any], str] | None,
) -> list[tuple[Document, list[Any]]]:
    if after is not None:
        conditions = [*conditions, keyset_after(sort, after[0], after[1])]
    conditions = [c for c in conditions if c]
    query: Document = (
        {} if not conditions else conditions[0] if len(conditions) == 1 else {"$and": conditions}
    )
    order = [(path, DESCENDING if desc else ASCENDING) for path, desc in sort] + [("_id", ASCENDING)]
    cursor = collection.find(query).sort(order).limit(limit)
    return [(doc, [read_path(doc, path) for path, _ in sort]) async for doc in cursor]


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


class MongoModelStore:
    """Models and their aliases (kept inside the model's document)."""

    def __init__(self, database: MongoDatabase):
        self._db = database
        self._models = database.models
        # With the replica: counters raised in memory and not yet in the database.
        self._unrecorded: dict[ModelName, int] = {}
        self._recorder: asyncio.Task[None] | None = None
        database.before_close.append(self._record_last_version_numbers)

    async def insert_model(self, model: Model, request_key: str, event: EventFor) -> Model:
        entry = outbox_entry(event(None, model))
        doc = {**model_document(model, request_key), "outbox": [entry]}
        try:
            await self._models.insert_one(doc)
            self._db.committed("models", doc["_id"], entry)
            if self._db.replica is not None:
                self._db.replica.put_model(doc)
        except DuplicateKeyError:
            existing = await self._models.find_one({"_id": doc["_id"]})
            if existing is not None and request_key and existing.get("request_key") == request_key:
                return model_from(existing)  # a retry of the create that made it
            if existing is not None and existing.get("deleted"):
                raise AlreadyExists(
                    f"model {model.name} exists and is deleted; UndeleteModel restores it",
                    reason="MODEL_DELETED",
                ) from None
            raise AlreadyExists(f"model {model.name} already exists") from None
        return model

    async def model_document(self, name: ModelName, *, include_deleted: bool = False) -> Document:
        key = model_key(name)
        replica = self._db.replica
        doc = replica.model(key) if replica is not None else None
        if doc is None:
            doc = await self._models.find_one({"_id": key})
            if doc is not None and replica is not None:
                replica.put_model(await self._with_exact_counter(doc))
                doc = replica.model(key)
        if doc is None or (doc.get("deleted") and not include_deleted):
            raise NotFound(f"model {name} not found")
        return doc

    async def get_model(self, name: ModelName, *, include_deleted: bool = False) -> Model:
        return model_from(await self.model_document(name, include_deleted=include_deleted))

    async def search_models(
        self,
        namespace: str,
        condition: Document,
        sort: list[tuple[str, bool]],
        *,
        limit: int,
        after: tuple[list[Any], str] | None,
        show_deleted: bool,
    ) -> Page:
        if self._unrecorded:  # the counters are fields of the results (and can be filtered on)
            await self._write_version_numbers()
        scope: Document = {"namespace": namespace}
        if not show_deleted:
            scope["deleted"] = False
        rows = await _page(self._models, [scope, condition], sort, limit, after)
        return [(model_from(doc), values, doc["_id"]) for doc, values in rows]

    async def update_model(
        self,
        name: ModelName,
        mutate: Callable[[Model], Model],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[Model, Model]:
        key = model_key(name)
        async with self._db.locks.hold(key):
            doc = await self.model_document(name, include_deleted=include_deleted)
            before = model_from(doc)
            if expected_etag and expected_etag != before.etag:
                raise Aborted(f"model {name} changed since it was read (etag mismatch); read it and retry")
            after = mutate(before)
            changes = model_fields(after)
            entry = outbox_entry(event(before, after))
            result = await self._models.update_one(
                self._db.cas_filter(key, doc.get("revision", 0)),
                {"$set": changes, "$inc": {"revision": 1}, "$push": {"outbox": entry}},
            )
            if result.matched_count != 1:
                raise Aborted(f"model {name} changed concurrently; retry")
            self._db.committed("models", key, entry)
            if self._db.replica is not None:
                self._db.replica.put_model(merged(doc, changes))
            return before, after

    async def record_version_numbers(self, latest: dict[ModelName, int]) -> None:
        """Raises the models' `latest_version_number` counters to the numbers just inserted.

        The counter is only a hint for the next allocation (numbers are guarded by the versions'
        unique `_id`). `$max` is one atomic write that no other write of the model contradicts
        (none sets the field, and the replica keeps the highest value it saw), so it needs no
        model lock. Without the replica it is written at once, for all models in one command.
        With it (one writing process), numbers come from the replica's counters, which are exact,
        and the database gets them at most COUNTER_SECONDS later, before any model search and at
        a graceful stop: on FerretDB a counter update rewrites the model document, which cost as
        much as the create itself. After a crash a stored counter may lag; the first read of the
        model in the next life finds the real one (`_with_exact_counter`).
        """
        replica = self._db.replica
        if replica is None:
            await self._write_version_numbers(latest)
            return
        for name, number in latest.items():
            replica.raise_version_number(model_key(name), number)
            self._record_later(name, number)

    def _record_later(self, name: ModelName, number: int) -> None:
        self._unrecorded[name] = max(number, self._unrecorded.get(name, 0))
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._recording(), name="version-counters")

    async def _recording(self) -> None:
        while self._unrecorded:
            await asyncio.sleep(COUNTER_SECONDS)
            try:
                await self._write_version_numbers()
            except PyMongoError:
                log.warning("recording version counters failed; retrying", exc_info=True)
        self._recorder = None

    async def _record_last_version_numbers(self) -> None:
        if self._recorder is not None:
            self._recorder.cancel()
            self._recorder = None
        await self._write_version_numbers()

    async def _write_version_numbers(self, latest: dict[ModelName, int] | None = None) -> None:
        if latest is None:
            latest, self._unrecorded = self._unrecorded, {}
        updates = [
            UpdateOne({"_id": model_key(name)}, {"$max": {"latest_version_number": number}})
            for name, number in latest.items()
        ]
        try:
            for start in range(0, len(updates), MAX_UPDATES_PER_COMMAND):
                await self._models.bulk_write(updates[start : start + MAX_UPDATES_PER_COMMAND], ordered=False)
        except BaseException:  # a failure, or cancelled at shutdown
            if self._db.replica is not None:  # written later, with whatever came meanwhile
                for name, number in latest.items():
                    self._unrecorded[name] = max(number, self._unrecorded.get(name, 0))
            raise

    async def _with_exact_counter(self, doc: Document) -> Document:
        """The model document with the number of its last version as counter. Versions are
        numbered 1..n without gaps, so n is found by point reads past the stored counter (which
        may lag after a crash): doubling steps, then bisection; one read when it does not lag."""
        name = ModelName(doc["namespace"], doc["model_id"])

        async def exists(number: int) -> bool:
            found = await self._db.versions.find_one({"_id": version_key(name, number)}, {"_id": True})
            return found is not None

        low = doc.get("latest_version_number", 0)  # exists (0 stands for "before the first")
        step = 1
        while await exists(low + step):
            low += step
            step *= 2
        high = low + step  # does not exist
        while high - low > 1:
            middle = (low + high) // 2
            if await exists(middle):
                low = middle
            else:
                high = middle
        if low == doc.get("latest_version_number", 0):
            return doc
        self._record_later(name, low)
        return {**doc, "latest_version_number": low}

    # Aliases

    async def get_alias(self, name: AliasName) -> Alias:
        doc = await self.model_document(name.model_name)
        for alias in aliases_from(doc):
            if alias.name == name:
                return alias
        raise NotFound(f"alias {name} not found")

    async def list_aliases(self, model: ModelName) -> list[Alias]:
        return sorted(aliases_from(await self.model_document(model)), key=lambda a: a.name.alias)

    async def change_alias(
        self,
        name: AliasName,
        change: Callable[[Alias | None, AliasProtection | None], Awaitable[Alias | None]],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Alias | None, Alias | None]:
        """Applies `change` to the alias (None when absent; returning None deletes it).

        `change` runs under the model's lock and sees the alias's protection: the versions of the
        model cannot change meanwhile in this process (updates of a version hold its model's lock
        too), and on MongoDB the write is conditioned on the model document's revision, so a
        concurrent move or protection change aborts the write instead of slipping past the gate.
        """
        key = model_key(name.model_name)
        async with self._db.locks.hold(key):
            doc = await self.model_document(name.model_name)
            aliases = {a.name.alias: a for a in aliases_from(doc)}
            before = aliases.get(name.alias)
            if expected_etag and (before is None or before.etag != expected_etag):
                if before is None:
                    raise NotFound(f"alias {name} not found")
                raise Aborted(f"alias {name} was moved by someone else (etag mismatch); read it and retry")
            after = await change(before, protections_from(doc).get(name.alias))
            if after is None:
                aliases.pop(name.alias, None)
            else:
                aliases[name.alias] = after
            if len(aliases) > MAX_ALIASES_PER_MODEL:
                raise FailedPrecondition(
                    f"model {name.model_name} already has {MAX_ALIASES_PER_MODEL} aliases; delete one first",
                    reason="TOO_MANY_ALIASES",
                )
            entries = [alias_entry(a) for _, a in sorted(aliases.items())]
            entry = outbox_entry(event(before, after))
            result = await self._models.update_one(
                self._db.cas_filter(key, doc.get("revision", 0)),
                {"$set": {"aliases": entries}, "$inc": {"revision": 1}, "$push": {"outbox": entry}},
            )
            if result.matched_count != 1:
                raise Aborted(f"alias {name} changed concurrently; retry")
            self._db.committed("models", key, entry)
            if self._db.replica is not None:
                self._db.replica.put_model(merged(doc, {"aliases": entries}))
            return before, after

    async def get_protection(self, name: AliasName) -> AliasProtection | None:
        return protections_from(await self.model_document(name.model_name)).get(name.alias)

    async def change_protection(
        self,
        name: AliasName,
        change: Callable[[AliasProtection | None, Alias | None], AliasProtection | None],
        event: EventFor,
    ) -> tuple[AliasProtection | None, AliasProtection | None]:
        """Sets (or with None, removes) the alias's protection, in the model's document."""
        key = model_key(name.model_name)
        async with self._db.locks.hold(key):
            doc = await self.model_document(name.model_name)
            protections = protections_from(doc)
            before = protections.get(name.alias)
            alias = next((a for a in aliases_from(doc) if a.name == name), None)
            after = change(before, alias)
            if after is None:
                protections.pop(name.alias, None)
            else:
                protections[name.alias] = after
            if len(protections) > MAX_ALIASES_PER_MODEL:
                raise FailedPrecondition(
                    f"model {name.model_name} already protects {MAX_ALIASES_PER_MODEL} aliases",
                    reason="TOO_MANY_ALIASES",
                )
            entries = [protection_entry(p) for _, p in sorted(protections.items())]
            entry = outbox_entry(event(before, after))
            result = await self._models.update_one(
                self._db.cas_filter(key, doc.get("revision", 0)),
                {"$set": {"alias_protections": entries}, "$inc": {"revision": 1}, "$push": {"outbox": entry}},
            )
            if result.matched_count != 1:
                raise Aborted(f"alias {name} changed concurrently; retry")
            self._db.committed("models", key, entry)
            if self._db.replica is not None:
                self._db.replica.put_model(merged(doc, {"alias_protections": entries}))
            return before, after


@dataclass
class _PendingCreate:
    version: ModelVersion
    request_key: str
    client_key: bool
    event: EventFor
    done: asyncio.Future[ModelVersion]


class MongoVersionStore:
    def __init__(self, database: MongoDatabase, models: MongoModelStore):
        self._db = database
        self._models = models
        self._versions = database.versions
        self._requests = database.requests
        self._series = database.series
        self._pending: list[_PendingCreate] = []
        self._crowded = False  # the last group commit served more than one create

    async def _by_request(self, request_key: str, *, search_versions: bool = False) -> ModelVersion | None:
        done = await self._requests.find_one({"_id": request_key})
        if done is None:
            if not search_versions:
                return None
            # The create may have inserted its version and died before recording the request:
            # the version carries the key (unique index), so look there, after a duplicate key.
            doc = await self._versions.find_one({"request_key": request_key})
            if doc is None:
                return None
            number = doc["number"]
            name = ModelName(doc["namespace"], doc["model_id"]).version(number)
        else:
            name = ModelName(done["namespace"], done["model_id"]).version(done["number"])
        return await self.get_version(name, include_deleted=True)

    async def insert_version(
        self, version: ModelVersion, request_key: str, client_key: bool, event: EventFor
    ) -> ModelVersion:
        """Stores `version` under the next free number of its model (the number in it is ignored)."""
        if client_key and (existing := await self._by_request(request_key)) is not None:
            return existing
        pending = _PendingCreate(
            version, request_key, client_key, event, asyncio.get_running_loop().create_future()
        )
        self._pending.append(pending)
        # Group commit: whoever gets the allocation lock inserts every create queued by then, of
        # every model, with one insert_many (one SQLite transaction on FerretDB) and one bulk
        # counter update; the others find their create done when their turn comes. One lock for
        # all models, not one each: the writes are serialized by the database anyway, and a
        # batch that spans models is what keeps batches large when creates spread over models.
        async with self._db.locks.hold("#versions"):
            if self._crowded and self._pending:
                await asyncio.sleep(GROUP_COMMIT_LINGER_SECONDS)
            batch, self._pending = self._pending, []
            if batch:
                self._crowded = len(batch) > 1
                await self._insert_batch(batch)
        return await pending.done

    async def _numbered(
        self, batch: list[_PendingCreate]
    ) -> list[tuple[_PendingCreate, ModelVersion, Document]]:
        """The batch's versions numbered from their models' counters, with their documents; a
        create whose model cannot be read (deleted meanwhile) fails alone."""
        names = list(dict.fromkeys(item.version.name.model_name for item in batch))
        found = await asyncio.gather(
            *(self._models.model_document(name) for name in names), return_exceptions=True
        )
        counters: dict[ModelName, int] = {}
        for name, doc in zip(names, found, strict=True):
            if isinstance(doc, BaseException):
                for item in batch:
                    if item.version.name.model_name == name:
                        item.done.set_exception(doc)
            else:
                counters[name] = doc.get("latest_version_number", 0)
        numbered: list[tuple[_PendingCreate, ModelVersion, Document]] = []
        for item in batch:
            model_name = item.version.name.model_name
            if model_name in counters:
                counters[model_name] += 1
                version = replace(item.version, name=model_name.version(counters[model_name]))
                numbered.append(
                    (item, version, _with_event(version_document(version, item.request_key), item, version))
                )
        return numbered

    async def _insert_batch(self, batch: list[_PendingCreate]) -> None:
        try:
            numbered = await self._numbered(batch)
            if not numbered:
                return  # every model of the batch failed to read; its creates have the error
            try:
                await self._versions.insert_many([doc for _, _, doc in numbered], ordered=True)
                inserted = len(numbered)
            except BulkWriteError as exc:  # ordered: everything before the first failure is in
                inserted = exc.details.get("nInserted", 0)
            made = numbered[:inserted]
            latest: dict[ModelName, int] = {}
            for _, version, doc in made:
                # Queued for the relay at once, in commit order, before anything else is awaited.
                self._db.committed("model_versions", doc["_id"], doc["outbox"][0])
                if self._db.replica is not None:
                    self._db.replica.put_version(doc)
                latest[version.name.model_name] = version.name.number
            requests = [(item.request_key, version.name) for item, version, _ in made if item.client_key]
            await asyncio.gather(self._models.record_version_numbers(latest), self._record_requests(requests))
            for item, version, _ in made:
                item.done.set_result(version)
            for item, _, _ in numbered[inserted:]:
                # The number was taken (another process, or a counter that lagged after a crash),
                # or the same request was created meanwhile: these go one at a time.
                item.done.set_result(await self._insert_alone(item.version.name.model_name, item))
        except Exception as exc:  # every waiting caller gets the failure, none waits forever
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)

    async def _insert_alone(self, model_name: ModelName, item: _PendingCreate) -> ModelVersion:
        model_doc = await self._models.model_document(model_name)
        number = model_doc.get("latest_version_number", 0)
        for _ in range(MAX_NUMBER_ATTEMPTS):
            number += 1
            numbered = replace(item.version, name=model_name.version(number))
            doc = _with_event(version_document(numbered, item.request_key), item, numbered)
            try:
                await self._versions.insert_one(doc)
            except DuplicateKeyError:
                if item.client_key and (
                    existing := await self._by_request(item.request_key, search_versions=True)
                ):
                    return existing  # another process created it for the same request
                continue  # the number is taken (another process, or a lagging counter)
            self._db.committed("model_versions", doc["_id"], doc["outbox"][0])
            if self._db.replica is not None:
                self._db.replica.put_version(doc)
            await self._models.record_version_numbers({model_name: number})
            if item.client_key:
                await self._record_requests([(item.request_key, numbered.name)])
            return numbered
        raise Aborted(f"too many concurrent writers on {model_name}; retry the request")

    async def _record_requests(self, requests: list[tuple[str, ModelVersionName]]) -> None:
        """Records which version each create request made (one insert for all of them)."""
        if not requests:
            return
        records = [
            {"_id": key, "namespace": name.namespace, "model_id": name.model, "number": name.number}
            for key, name in requests
        ]
        try:
            await self._requests.insert_many(records, ordered=False)
        except BulkWriteError as exc:
            # A duplicate: recorded by a concurrent retry of the same request. Anything else is not.
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def _stored_version(self, name: ModelVersionName) -> Document | None:
        """The version's document as stored (a purged version's tombstone included)."""
        key = version_key(name.model_name, name.number)
        replica = self._db.replica
        doc = replica.version(name.namespace, name.model, key) if replica is not None else None
        if doc is None and (replica is None or not replica.has_namespace(name.namespace)):
            doc = await self._versions.find_one({"_id": key})
            if doc is not None and replica is not None:
                replica.put_version(doc)
        return doc

    async def _version_document(self, name: ModelVersionName, *, include_deleted: bool = False) -> Document:
        doc = await self._stored_version(name)
        if doc is not None and doc.get("purged"):
            raise NotFound(f"model version {name} was purged", reason="VERSION_PURGED")
        if doc is None or (doc.get("deleted") and not include_deleted):
            raise NotFound(f"model version {name} not found")
        return doc

    async def get_version(self, name: ModelVersionName, *, include_deleted: bool = False) -> ModelVersion:
        # Both reads are by `_id` and independent: the model answers "deleted?" and the aliases.
        model_doc, doc = await asyncio.gather(
            self._models.model_document(name.model_name),
            self._version_document(name, include_deleted=include_deleted),
        )
        return version_from(doc, aliases_of_version(model_doc, name.number))

    async def get_version_by_alias(self, name: AliasName) -> ModelVersion:
        model_doc = await self._models.model_document(name.model_name)
        number = next(
            (e["version_number"] for e in model_doc.get("aliases", []) if e["alias"] == name.alias), None
        )
        if number is None:
            raise NotFound(f"alias {name} not found")
        version_name = name.model_name.version(number)
        try:
            doc = await self._version_document(version_name)
        except NotFound:
            raise NotFound(f"alias {name} points at {version_name}, which is deleted") from None
        return version_from(doc, aliases_of_version(model_doc, number))

    async def search_versions(
        self,
        scope: Document,
        condition: Document,
        sort: list[tuple[str, bool]],
        *,
        limit: int,
        after: tuple[list[Any], str] | None,
        show_deleted: bool,
    ) -> Page:
        # Tombstones of purged versions are `deleted` too: shown deleted versions exclude them.
        scope = {**scope, "deleted": False} if not show_deleted else {**scope, "purged": {"$ne": True}}
        if self._db.replica is not None:
            rows = await self._replica_page(scope, condition, sort, limit, after)
        else:
            rows = await _page(self._versions, [scope, condition], sort, limit, after)
        model_keys = sorted({f"{doc['namespace']}/{doc['model_id']}" for doc, _ in rows})
        found = await asyncio.gather(*(self._db.models.find_one({"_id": key}) for key in model_keys))
        models = {key: doc for key, doc in zip(model_keys, found, strict=True) if doc is not None}
        page: Page = []
        for doc, values in rows:
            model_doc = models.get(f"{doc['namespace']}/{doc['model_id']}")
            if model_doc is None or (model_doc.get("deleted") and not show_deleted):
                # The versions of a deleted model are deleted with it: hidden, but still a row,
                # so the page's cursor moves past it.
                page.append((None, values, doc["_id"]))
                continue
            page.append(
                (self._version_from(doc, aliases_of_version(model_doc, doc["number"])), values, doc["_id"])
            )
        return page

    def _version_from(self, doc: Document, aliases: list[str]) -> ModelVersion:
        replica = self._db.replica
        if replica is None:
            return version_from(doc, aliases)
        version = replica.built(doc, version_from)
        return replace(version, aliases=aliases) if aliases else version

    async def _replica_page(
        self,
        scope: Document,
        condition: Document,
        sort: list[tuple[str, bool]],
        limit: int,
        after: tuple[list[Any], str] | None,
    ) -> list[tuple[Document, list[Any]]]:
        replica = self._db.replica
        assert replica is not None  # noqa: S101 - the caller checked
        namespace = scope["namespace"]
        if not replica.has_namespace(namespace):
            async with self._db.locks.hold(f"replica {namespace}"):
                if not replica.has_namespace(namespace):
                    replica.begin_load(namespace)
                    docs = [doc async for doc in self._versions.find({"namespace": namespace})]
                    replica.finish_load(namespace, docs)
        # The replica is partitioned by namespace and model: only the rest of the scope is tested.
        rest = {k: v for k, v in scope.items() if k not in ("namespace", "model_id")}
        conditions = [rest, condition]
        if after is not None:
            conditions.append(keyset_after(sort, after[0], after[1]))
        query: Document = {"$and": [c for c in conditions if c]}
        order = [(path, -1 if desc else 1) for path, desc in sort] + [("_id", 1)]
        docs = replica.find_versions(namespace, scope.get("model_id"), query, order, limit)
        return [(doc, [read_path(doc, path) for path, _ in sort]) for doc in docs]

    async def update_version(
        self,
        name: ModelVersionName,
        mutate: Callable[[ModelVersion, dict[str, AliasProtection]], ModelVersion],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[ModelVersion, ModelVersion]:
        key = version_key(name.model_name, name.number)
        # The model's lock too: alias moves check the version under it, so a delete or archive
        # and an alias move of the same model never interleave.
        async with self._db.locks.hold(model_key(name.model_name)), self._db.locks.hold(key):
            model_doc, doc = await asyncio.gather(
                self._models.model_document(name.model_name),
                self._version_document(name, include_deleted=include_deleted),
            )
            before = version_from(doc, aliases_of_version(model_doc, name.number))
            if expected_etag and expected_etag != before.etag:
                raise Aborted(
                    f"model version {name} changed since it was read (etag mismatch); read it and retry"
                )
            after = mutate(before, protections_from(model_doc))
            if after is before:
                return before, after  # nothing to change (e.g. the same file added again)
            changes = version_fields(after)
            await self._write_version(name, doc, changes, outbox_entry(event(before, after)))
            return before, after

    async def _write_version(
        self,
        name: ModelVersionName,
        doc: Document,
        changes: Document,
        entry: Document,
        *,
        removed: Sequence[str] = (),
    ) -> None:
        """`$set` the changes (and `$unset` the `removed` fields) with their outbox entry; the
        replica gets the same document.

        Shielded: a caller cancelled while the write is in flight (a client that gave up) must not
        leave the database changed and the replica not. Should the write fail in a way that leaves
        its outcome unknown, a version that the replica holds outside a loaded namespace is
        dropped from it, so the next access reads the database again.
        """
        key = doc["_id"]

        update: Document = {"$set": changes, "$inc": {"revision": 1}, "$push": {"outbox": entry}}
        if removed:
            update["$unset"] = dict.fromkeys(removed, "")

        async def write() -> None:
            result = await self._versions.update_one(self._db.cas_filter(key, doc.get("revision", 0)), update)
            if result.matched_count != 1:
                raise Aborted(f"model version {name} changed concurrently; retry")
            self._db.committed("model_versions", key, entry)
            if self._db.replica is not None:
                self._db.replica.put_version(merged(doc, changes, removed))

        try:
            await asyncio.shield(write())
        except Exception:
            if self._db.replica is not None:
                self._db.replica.forget_version(doc)
            raise

    # Purge

    async def purge_version(
        self,
        name: ModelVersionName,
        check: Callable[[ModelVersion], None],
        expected_etag: str,
        event: EventFor,
    ) -> None:
        """Removes a version for good: its document becomes a tombstone, then its metric history
        documents are deleted.

        Why a tombstone, written first, and not a deleted document:
        - The purge's event must never be lost. An outbox entry lives in its document until the
          relay has placed it in the trail (store/outbox.py), so deleting the document would
          delete the event with it, and with it any entry of an earlier change not placed yet.
          The tombstone keeps `outbox` and `revision`: replacing the version by it and pushing
          the event is one single-document write, so the change and its event commit together,
          and the relay places the event like any other.
        - The number must never be reused. Numbers are taken by inserting `_id`
          `{namespace}/{model}/{n}` (see the module docstring), and a lagging counter is caught
          up by probing those `_id`s; the tombstone keeps the `_id` taken, so neither hands the
          number out again, and a read of it can say that it was purged.
        - Crash safety. The tombstone write is the commit; a crash before it changed nothing. A
          crash after it leaves metric history documents behind, which the tombstone still lists
          in `metric_meta` until they are deleted: purging again finishes the purge (and answers
          as the interrupted call would have). Once finished, purging again is NOT_FOUND.
        The tombstone also keeps `request_key` (a unique index; without the field every
        tombstone would index as null and collide on MongoDB) and the identity fields the
        replica and operators use. `files` goes, so CheckBlobReferences no longer counts them.
        """
        key = version_key(name.model_name, name.number)
        async with self._db.locks.hold(model_key(name.model_name)), self._db.locks.hold(key):
            doc = await self._stored_version(name)
            if doc is None:
                raise NotFound(f"model version {name} not found")
            if doc.get("purged"):
                if not doc.get("metric_meta"):
                    raise NotFound(f"model version {name} was purged already", reason="VERSION_PURGED")
            else:
                model_doc = await self._models.model_document(name.model_name)
                before = version_from(doc, aliases_of_version(model_doc, name.number))
                if expected_etag and expected_etag != before.etag:
                    raise Aborted(
                        f"model version {name} changed since it was read (etag mismatch); read it and retry"
                    )
                check(before)
                tombstone = {field: doc[field] for field in TOMBSTONE_FIELDS if field in doc}
                tombstone |= {"deleted": True, "purged": True, "purge_time": now()}
                if doc.get("metric_meta"):
                    tombstone["metric_meta"] = doc["metric_meta"]  # the history still to delete
                kept = {"_id", "revision", "outbox", *tombstone}
                removed = [field for field in doc if field not in kept]
                await self._write_version(
                    name, doc, tombstone, outbox_entry(event(before, None)), removed=removed
                )
                doc = merged(doc, tombstone, removed)
            await self._delete_history(doc)

    async def purgeable(self, deleted_before: datetime) -> list[ModelVersionName]:
        """Versions deleted before `deleted_before`, and tombstones whose history is still to
        delete (a purge interrupted by a crash). A deleted version cannot change until it is
        undeleted (every other update refuses it), so its `update_time` is when it was deleted.
        On FerretDB this reads the whole collection; the retention that asks runs rarely."""
        query: Document = {
            "$or": [
                {"deleted": True, "purged": {"$ne": True}, "update_time": {"$lt": deleted_before}},
                {"purged": True, "metric_meta": {"$exists": True}},
            ]
        }
        cursor = self._versions.find(query, {"namespace": True, "model_id": True, "number": True})
        return [ModelName(doc["namespace"], doc["model_id"]).version(doc["number"]) async for doc in cursor]

    async def _delete_history(self, tombstone: Document) -> None:
        """Deletes a purged version's metric history documents, by `_id` (the one lookup FerretDB
        does not scan for), then `metric_meta`, which listed them: the purge is complete."""
        meta: list[Document] = tombstone.get("metric_meta") or []
        if not meta:
            return
        key = tombstone["_id"]
        # Every bucket the point count implies, and one more: a LogMetrics that crashed after
        # appending its points and before counting them may have started the next bucket.
        ids = [
            f"{key}|{bucket}|{metric['k']}"
            for metric in meta
            for bucket in range(-(-metric.get("points", 0) // POINTS_PER_SERIES_DOCUMENT) + 1)
        ]
        for start in range(0, len(ids), MAX_UPDATES_PER_COMMAND):
            batch = ids[start : start + MAX_UPDATES_PER_COMMAND]
            await self._series.bulk_write([DeleteOne({"_id": i}) for i in batch], ordered=False)
        await self._versions.update_one(
            {"_id": key}, {"$unset": {"metric_meta": ""}, "$inc": {"revision": 1}}
        )
        if self._db.replica is not None:
            self._db.replica.put_version(merged(tombstone, {}, ["metric_meta"]))

    # Metric history

    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_key: str, event: EventFor
    ) -> tuple[ModelVersion, ModelVersion]:
        key = version_key(name.model_name, name.number)
        async with self._db.locks.hold(key):
            if request_key and await self._requests.find_one({"_id": request_key}, {"_id": True}):
                current = await self.get_version(name)
                return current, current  # a retry of a call that already logged its points
            model_doc, doc = await asyncio.gather(
                self._models.model_document(name.model_name), self._version_document(name)
            )
            before = version_from(doc, aliases_of_version(model_doc, name.number))
            meta: dict[str, Document] = {m["k"]: m for m in doc.get("metric_meta", [])}
            by_key: dict[str, list[MetricPoint]] = {}
            for point in points:
                by_key.setdefault(point.key, []).append(point)
            # History first, then the summary: the version's write is the commit that makes the
            # call visible in the summary (and, later, in the audit trail). A crash in between
            # leaves extra history points and no summary change; the retry logs them again.
            for metric, series in by_key.items():
                count = meta.get(metric, {}).get("points", 0)
                await self._append_series(key, metric, count, series)
            metrics = dict(before.metrics)
            for metric, series in by_key.items():
                latest = max(series, key=lambda p: (p.step, p.time))
                previous = meta.get(metric)
                count = (previous or {}).get("points", 0) + len(series)
                if previous is None or (latest.step, latest.time) >= (previous["step"], previous["time"]):
                    metrics[metric] = latest.value
                    meta[metric] = {"k": metric, "step": latest.step, "time": latest.time, "points": count}
                else:
                    meta[metric] = {**previous, "points": count}
            after = ModelVersion(
                **{**before.__dict__, "metrics": metrics, "update_time": now(), "etag": new_etag()}
            )
            changes = {
                "metrics": pairs(metrics),
                "m": encoded_map(metrics),
                "metric_meta": [meta[k] for k in sorted(meta)],
                "update_time": after.update_time,
                "etag": after.etag,
            }
            await self._write_version(name, doc, changes, outbox_entry(event(before, after)))
            if request_key:
                await self._requests.update_one(
                    {"_id": request_key}, {"$set": {"kind": "LogMetrics"}}, upsert=True
                )
            return before, after

    async def _append_series(self, version: str, metric: str, count: int, points: list[MetricPoint]) -> None:
        rows = [{"v": p.value, "s": p.step, "t": p.time, "d": p.dataset, "sl": p.slice} for p in points]
        position = count
        while rows:
            bucket, offset = divmod(position, POINTS_PER_SERIES_DOCUMENT)
            room = POINTS_PER_SERIES_DOCUMENT - offset
            chunk, rows = rows[:room], rows[room:]
            await self._series.update_one(
                {"_id": f"{version}|{bucket}|{metric}"}, {"$push": {"points": {"$each": chunk}}}, upsert=True
            )
            position += len(chunk)

    async def metric_history(
        self, name: ModelVersionName, metric: str, start: tuple[int, int], limit: int
    ) -> tuple[list[MetricPoint], tuple[int, int] | None]:
        """Points from (series document, offset) `start` on, and where the next page starts."""
        await self._version_document(name)
        key = version_key(name.model_name, name.number)
        points: list[MetricPoint] = []
        bucket, offset = start
        while len(points) < limit:
            doc = await self._series.find_one({"_id": f"{key}|{bucket}|{metric}"})
            if doc is None:
                return points, None
            stored = doc.get("points", [])
            taken = stored[offset : offset + limit - len(points)]
            points += [
                MetricPoint(
                    key=metric,
                    value=row["v"],
                    step=row.get("s", 0),
                    time=row.get("t"),
                    dataset=row.get("d", ""),
                    slice=row.get("sl", ""),
                )
                for row in taken
            ]
            offset += len(taken)
            if offset >= len(stored):
                bucket, offset = bucket + 1, 0
        return points, (bucket, offset)


def _with_event(doc: Document, item: _PendingCreate, version: ModelVersion) -> Document:
    """A new version's document carrying its creation event (the number is known only now)."""
    return {**doc, "outbox": [outbox_entry(item.event(None, version))]}
