"""An in-process, write-through copy of model and version documents, for FerretDB deployments.

Why: FerretDB v1 filters every query other than a lone `_id` equality in Go after reading and
decoding the whole collection (about 0.1-0.5 ms per document), so a search over 10,000 versions
takes seconds whatever the indexes. Its updates are not atomic either, so a FerretDB deployment
already runs exactly one metadata process (store/locks.py). That one process sees every write,
and can therefore keep an exact copy of what it reads:

- model and version documents are cached on first read, by `_id` (a version updated again
  and again, like one receiving thousands of files, is then not read back before each write:
  FerretDB decodes the whole document, manifest included, for every read);
- a namespace's version documents are loaded by one query the first time it is searched (until
  then, the versions cached by `_id` are only a part of it, used for reads by `_id`);
- every committed write replaces the cached document (the higher `revision` wins, so a load that
  races a write cannot resurrect an older copy);
- searches run the same compiled MongoDB query over the copy (store/matcher.py);
- versions are numbered from the copy's model counters, which are exact; the database gets the
  counters later (`ReplicaView.record_version_numbers`).

`ReplicaView` is how the stores see it: the same methods as `DatabaseView` (store/view.py), which
MongoDB deployments use (several processes, real indexes: queries go to the database). It is the
one place that knows the replica exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from modelreg_api.names import ModelName, ModelVersionName
from pymongo.errors import PyMongoError

from modelreg_metadata.domain import ModelVersion
from modelreg_metadata.search import Cursor
from modelreg_metadata.store.documents import (
    Document,
    merged,
    model_key,
    version_from,
    version_key,
    without_outbox,
)
from modelreg_metadata.store.matcher import predicate, sort_documents
from modelreg_metadata.store.query import keyset_after
from modelreg_metadata.store.view import DatabaseView

if TYPE_CHECKING:
    from modelreg_metadata.store.database import MongoDatabase

T = TypeVar("T")

# Model counters reach the database at most this late.
COUNTER_SECONDS = 1.0

log = structlog.get_logger("modelreg.metadata.store")


def _newer(candidate: Document, current: Document | None) -> bool:
    return current is None or candidate.get("revision", 0) >= current.get("revision", 0)


class Replica:
    def __init__(self) -> None:
        self._models: dict[str, Document] = {}
        # namespace -> model id -> version _id -> doc: a search of one model reads only its versions
        self._versions: dict[str, dict[str, dict[str, Document]]] = {}
        self._loaded: set[str] = set()
        # Domain objects built from documents, kept while the document is current: a search
        # returns the same versions over and over, and building them costs more than finding them.
        self._built: dict[str, tuple[Document, Any]] = {}
        self._by_number: dict[tuple[str, str], list[Document]] = {}

    # Models

    def model(self, key: str) -> Document | None:
        return self._models.get(key)

    def put_model(self, doc: Document) -> None:
        doc = without_outbox(doc)
        current = self._models.get(doc["_id"])
        if _newer(doc, current):
            if current is not None and current.get("latest_version_number", 0) > doc.get(
                "latest_version_number", 0
            ):
                # The counter only grows, and is raised without the model's lock: an update that
                # read the model before a create raised it must not take the new value back.
                doc = {**doc, "latest_version_number": current["latest_version_number"]}
            self._models[doc["_id"]] = doc

    def raise_version_number(self, key: str, number: int) -> None:
        current = self._models.get(key)
        if current is not None and current.get("latest_version_number", 0) < number:
            self._models[key] = {**current, "latest_version_number": number}

    def built(self, doc: Document, build: Callable[[Document], T]) -> T:
        entry = self._built.get(doc["_id"])
        if entry is not None and entry[0] is doc:
            value: T = entry[1]
            return value
        value = build(doc)
        self._built[doc["_id"]] = (doc, value)
        return value

    # Versions

    def has_namespace(self, namespace: str) -> bool:
        return namespace in self._loaded

    def begin_load(self, namespace: str) -> None:
        """Writes from now on are kept even before the load finishes."""
        self._versions.setdefault(namespace, {})

    def finish_load(self, namespace: str, docs: list[Document]) -> None:
        for doc in docs:
            self.put_version(doc)
        self._loaded.add(namespace)

    def version(self, namespace: str, model_id: str, key: str) -> Document | None:
        return self._versions.get(namespace, {}).get(model_id, {}).get(key)

    def put_version(self, doc: Document) -> None:
        models = self._versions.setdefault(doc["namespace"], {})
        doc = without_outbox(doc)
        versions = models.setdefault(doc["model_id"], {})
        current = versions.get(doc["_id"])
        if _newer(doc, current):
            versions[doc["_id"]] = doc
            self._by_number.pop((doc["namespace"], doc["model_id"]), None)

    def forget_version(self, doc: Document) -> None:
        """Drop a version whose stored state is unknown (a write that failed midway); a loaded
        namespace keeps it, since its searches need every version (as before any failure)."""
        if doc["namespace"] not in self._loaded:
            self._versions.get(doc["namespace"], {}).get(doc["model_id"], {}).pop(doc["_id"], None)

    def _numbered(self, namespace: str, model_id: str) -> list[Document]:
        """A model's versions in number order (kept until one of them changes)."""
        key = (namespace, model_id)
        ordered = self._by_number.get(key)
        if ordered is None:
            ordered = sorted(self._versions[namespace].get(model_id, {}).values(), key=_number)
            self._by_number[key] = ordered
        return ordered

    def find_versions(
        self, namespace: str, model_id: str | None, query: Document, sort: list[tuple[str, int]], limit: int
    ) -> list[Document]:
        models = self._versions[namespace]
        matches = predicate(query)
        if model_id is None:
            docs = [doc for versions in models.values() for doc in versions.values()]
        else:
            docs = list(models.get(model_id, {}).values())
            if sort == [("number", 1), ("_id", 1)]:
                # The default order: walk the versions by number and stop at the page's end.
                docs = self._numbered(namespace, model_id)
                page: list[Document] = []
                for doc in docs:
                    if matches(doc):
                        page.append(doc)
                        if len(page) == limit:
                            break
                return page
        return sort_documents([doc for doc in docs if matches(doc)], sort)[:limit]


def _number(doc: Document) -> int:
    number: int = doc["number"]
    return number


class ReplicaView(DatabaseView):
    """The stores' view on FerretDB: reads from the replica (the database once per document),
    searches over it, counters from it."""

    def __init__(self, database: MongoDatabase):
        super().__init__(database)
        self.replica = Replica()
        # The last version with aliases built from a document: (version without, aliases, with).
        self._aliased: dict[str, tuple[ModelVersion, tuple[str, ...], ModelVersion]] = {}
        # Counters raised in the replica and not yet in the database.
        self._unrecorded: dict[ModelName, int] = {}
        self._recorder: asyncio.Task[None] | None = None

    # Models

    async def model(self, name: ModelName) -> Document | None:
        key = model_key(name)
        doc = self.replica.model(key)
        if doc is None:
            doc = await self._db.models.find_one({"_id": key})
            if doc is not None:
                self.replica.put_model(await self._with_exact_counter(doc))
                doc = self.replica.model(key)
        return doc

    def model_written(self, doc: Document) -> None:
        self.replica.put_model(doc)

    def model_changed(self, doc: Document, changes: Document) -> None:
        self.replica.put_model(merged(doc, changes))

    async def record_version_numbers(self, latest: dict[ModelName, int]) -> None:
        """Numbers come from the replica's counters, which are exact; the database gets them at
        most COUNTER_SECONDS later, before any model search and at a graceful stop: on FerretDB a
        counter update rewrites the model document, which cost as much as the create itself.
        After a crash a stored counter may lag; the first read of the model in the next life
        finds the real one (`_with_exact_counter`)."""
        for name, number in latest.items():
            self.replica.raise_version_number(model_key(name), number)
            self._record_later(name, number)

    async def before_model_search(self) -> None:
        if self._unrecorded:  # the counters are fields of the results (and can be filtered on)
            await self._write_unrecorded()

    def _record_later(self, name: ModelName, number: int) -> None:
        self._unrecorded[name] = max(number, self._unrecorded.get(name, 0))
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._recording(), name="version-counters")

    async def _recording(self) -> None:
        while self._unrecorded:
            await asyncio.sleep(COUNTER_SECONDS)
            try:
                await self._write_unrecorded()
            except PyMongoError:
                log.warning("recording version counters failed; retrying", exc_info=True)
        self._recorder = None

    async def record_last_version_numbers(self) -> None:
        """At a graceful stop."""
        if self._recorder is not None:
            self._recorder.cancel()
            self._recorder = None
        await self._write_unrecorded()

    async def _write_unrecorded(self) -> None:
        latest, self._unrecorded = self._unrecorded, {}
        try:
            await self.write_version_numbers(latest)
        except BaseException:  # a failure, or cancelled at shutdown
            # Written later, with whatever came meanwhile.
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

    # Versions

    async def version(self, name: ModelVersionName) -> Document | None:
        key = version_key(name.model_name, name.number)
        replica = self.replica
        doc = replica.version(name.namespace, name.model, key)
        if doc is None and not replica.has_namespace(name.namespace):
            doc = await self._db.versions.find_one({"_id": key})
            if doc is not None:
                replica.put_version(doc)
        return doc

    def version_written(self, doc: Document) -> None:
        self.replica.put_version(doc)

    def version_changed(self, doc: Document, changes: Document, removed: Iterable[str] = ()) -> None:
        self.replica.put_version(merged(doc, changes, removed))

    def version_unknown(self, doc: Document) -> None:
        self.replica.forget_version(doc)

    def version_from(self, doc: Document, aliases: list[str]) -> ModelVersion:
        """Built once per document (and per set of aliases): reads and searches return the same
        versions over and over, and versions are frozen, so one object serves them all (and its
        message is built once, convert.py)."""
        version = self.replica.built(doc, version_from)
        if not aliases:
            return version
        wanted = tuple(aliases)
        cached = self._aliased.get(doc["_id"])
        if cached is not None and cached[0] is version and cached[1] == wanted:
            return cached[2]
        aliased = replace(version, aliases=aliases)
        self._aliased[doc["_id"]] = (version, wanted, aliased)
        return aliased

    async def find_versions(
        self,
        scope: Document,
        condition: Document,
        sort: list[tuple[str, bool]],
        limit: int,
        after: Cursor | None,
    ) -> list[Document]:
        replica = self.replica
        namespace = scope["namespace"]
        if not replica.has_namespace(namespace):
            async with self._db.locks.hold(f"replica {namespace}"):
                if not replica.has_namespace(namespace):
                    replica.begin_load(namespace)
                    docs = [doc async for doc in self._db.versions.find({"namespace": namespace})]
                    replica.finish_load(namespace, docs)
        # The replica is partitioned by namespace and model: only the rest of the scope is tested.
        rest = {k: v for k, v in scope.items() if k not in ("namespace", "model_id")}
        conditions = [rest, condition]
        if after is not None:
            conditions.append(keyset_after(sort, after.values, after.key))
        query: Document = {"$and": [c for c in conditions if c]}
        order = [(path, -1 if desc else 1) for path, desc in sort] + [("_id", 1)]
        return replica.find_versions(namespace, scope.get("model_id"), query, order, limit)
