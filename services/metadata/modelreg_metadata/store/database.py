"""The MongoDB database the stores share (PyMongo's async API), within the subset FerretDB v1
supports: the client, the collections and their indexes, the write conditions, and the view the
stores read documents through (store/view.py: the database itself, or FerretDB's replica).

No multi-document transactions exist there, so every invariant lives in one document or is
guarded by a unique index:
- every resource's `_id` is its name (store/documents.py), so names are unique by construction
  and every point read and write is by `_id`;
- version numbers: the next number is the model's `latest_version_number` + 1 and the version is
  inserted under that `_id`; a duplicate-key error means another writer took it, so we try the
  next. Numbers come only from successful inserts, so they are gap-free even if a writer dies
  (store/version_creates.py);
- aliases live inside their model's document: a move is one single-document write, and reading a
  version by alias is two `_id` reads (store/models.py);
- every read-modify-write holds the document's in-process lock (store/locks.py) and, on MongoDB,
  also conditions the write on the document's revision (compare-and-set, `cas_filter`), so no
  update is lost;
- metric histories live in their own documents (`metric_series`), 1000 points per document
  (store/versions.py);
- a purged version leaves a tombstone under its `_id` (`MongoVersionStore.purge_version`), so its
  number stays taken;
- every write of a namespace, model or version document also pushes the change's audit event
  into that document's `outbox` (audit/outbox.py), in the same single-document write.

One module per aggregate holds its store: store/namespaces.py, store/models.py (models and their
aliases), store/versions.py (with store/version_creates.py, the group commit of creates). The
FerretDB accommodations for reads live in one layer, store/replica.py; the stores see it only as
`MongoDatabase.view`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pymongo
import structlog
from modelreg_common.config import MongoTimeouts
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from modelreg_metadata.audit.event_index import EventIndex
from modelreg_metadata.audit.mongo_log import EventFeed, MongoEventLog
from modelreg_metadata.audit.outbox import Relay
from modelreg_metadata.faults import Faults
from modelreg_metadata.store.documents import Document
from modelreg_metadata.store.locks import DocumentLocks
from modelreg_metadata.store.replica import ReplicaView
from modelreg_metadata.store.view import DatabaseView

log = structlog.get_logger("modelreg.metadata.store")


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
        atomic_updates: bool | None = None,
        timeouts: MongoTimeouts | None = None,
    ):
        # Bounded waits: with the database down, a call fails (UNAVAILABLE) after timeouts.timeout_ms.
        self.timeouts = timeouts or MongoTimeouts()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            tz_aware=True,
            appname="modelreg-metadata",
            maxPoolSize=200,
            **self.timeouts.client_options(),
        )
        self.db: AsyncDatabase[Document] = self.client[database]
        self.namespaces: AsyncCollection[Document] = self.db["namespaces"]
        self.models: AsyncCollection[Document] = self.db["models"]
        self.versions: AsyncCollection[Document] = self.db["model_versions"]
        self.series: AsyncCollection[Document] = self.db["metric_series"]
        self.requests: AsyncCollection[Document] = self.db["requests"]
        # What each request id was first used for (store/requests.py, registry/idempotency.py).
        self.request_fingerprints: AsyncCollection[Document] = self.db["request_fingerprints"]
        self.events: AsyncCollection[Document] = self.db["events"]
        self.relay_state: AsyncCollection[Document] = self.db["event_relay"]  # audit/outbox.py
        # API tokens and role bindings (store/access.py), read by both services.
        self.api_tokens: AsyncCollection[Document] = self.db["api_tokens"]
        self.role_bindings: AsyncCollection[Document] = self.db["role_bindings"]
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
        # None: detected at start. True on FerretDB takes MongoDB's path there (revision
        # conditions, a relay for several processes, no replica), which the wrapper's serialized
        # writes make correct, only slower: the contract tests (tests/contract) run it that way.
        self._atomic_updates = atomic_updates
        self.ferretdb = False
        self._want_replica = replica
        # Where the stores read documents from (store/view.py): the database, or on FerretDB the
        # process's replica of it (store/replica.py).
        self.view = DatabaseView(self)
        self.before_close: list[Callable[[], Awaitable[None]]] = []  # last writes

    def _new_relay(self, *, single_writer: bool) -> Relay:
        relay = Relay(
            {
                "namespaces": self.namespaces,
                "models": self.models,
                "model_versions": self.versions,
                "api_tokens": self.api_tokens,
                "role_bindings": self.role_bindings,
            },
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
        self.ferretdb = "ferretdbVersion" in info
        self.atomic_updates = not self.ferretdb if self._atomic_updates is None else self._atomic_updates
        # FerretDB deployments run one metadata process (store/locks.py): its relay is the only one.
        self.relay = self._new_relay(single_writer=not self.atomic_updates)
        if not self.atomic_updates and self._want_replica:
            replica = ReplicaView(self)  # one process is the only writer: see store/replica.py
            self.before_close.append(replica.record_last_version_numbers)
            self.view = replica
            # The same process places every event: it can index the trail (audit/event_index.py).
            self.event_log.searcher = EventIndex(self.events, self.event_log.feed)
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
        if not self.ferretdb:
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
                (self.events, IndexModel([("action", ASCENDING), ("seq", ASCENDING)], name="by_action")),
                (self.events, IndexModel([("time", ASCENDING)], name="by_time")),
                # The relay's sweep finds leftover outbox entries by their time.
                (self.namespaces, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.models, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.versions, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.api_tokens, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (self.role_bindings, IndexModel([("outbox.time", ASCENDING)], name="outbox")),
                (
                    self.api_tokens,
                    IndexModel([("principal", ASCENDING), ("_id", ASCENDING)], name="by_principal"),
                ),
                (
                    self.role_bindings,
                    IndexModel([("namespace", ASCENDING), ("_id", ASCENDING)], name="by_namespace"),
                ),
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
        # The health probe's question (modelreg_common/store_health.py): short, whatever the bounds.
        with pymongo.timeout(self.timeouts.probe_seconds):
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
