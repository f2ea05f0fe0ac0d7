"""The store protocols (store/__init__.py) kept in memory, with the rules of the MongoDB stores.

Every change is one synchronous step (read the record, apply the rule, write it back, append its
event), so, as with one document written with its outbox entry, a change and its event exist
together or not at all. Before that step each call yields to the event loop once, where a
database call would, so concurrent callers interleave as they do against a server; the locks a
MongoDB store holds across its reads and write (a model's, a version's) are held here too, so
`change` and `mutate` functions see the same guarantees.

The rules kept: names are unique (a retried create with its request key gets the resource it
made); versions are numbered 1..n per model without gaps and a number is never reused (a purged
version stays as a tombstone); an expected etag that does not match is Aborted; a deleted model
hides its versions; aliases and their protections live with their model; searches and their
keyset pages follow the MongoDB semantics, since they run the same compiled query over the same
documents (store/documents.py, store/query.py, store/matcher.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from modelreg_api.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName

from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import (
    MAX_ALIASES_PER_MODEL,
    Alias,
    AliasProtection,
    MetricPoint,
    Model,
    ModelVersion,
    Namespace,
    check_digests,
)
from modelreg_metadata.memory.events import MemoryEventLog
from modelreg_metadata.search import Cursor, Page, Search
from modelreg_metadata.store import EventFor
from modelreg_metadata.store.documents import (
    Document,
    model_document,
    model_key,
    version_document,
    version_key,
)
from modelreg_metadata.store.locks import DocumentLocks
from modelreg_metadata.store.matcher import predicate, sort_documents
from modelreg_metadata.store.query import compile_condition, keyset_after, sort_spec, split_page

# Metric histories page in (bucket, offset) positions, as the MongoDB store's series documents do.
POINTS_PER_BUCKET = 1000


async def _io() -> None:
    """Where a database call would be: other tasks run."""
    await asyncio.sleep(0)


def _stored_time(moment: datetime | None) -> datetime | None:
    # MongoDB keeps milliseconds: a time read back has no finer part.
    return None if moment is None else moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class _NamespaceRecord:
    namespace: Namespace
    request_key: str


@dataclass
class _ModelRecord:
    model: Model
    request_key: str
    latest_version_number: int = 0
    aliases: dict[str, Alias] = field(default_factory=dict)  # kept without their protection
    protections: dict[str, AliasProtection] = field(default_factory=dict)
    _document: Document | None = None

    def current(self) -> Model:
        if self.model.latest_version_number == self.latest_version_number:
            return self.model
        return replace(self.model, latest_version_number=self.latest_version_number)

    def set(self, model: Model) -> None:
        self.model = model
        self._document = None

    def raise_counter(self, number: int) -> None:
        self.latest_version_number = max(self.latest_version_number, number)
        self._document = None

    def document(self) -> Document:
        if self._document is None:
            self._document = model_document(self.current(), self.request_key)
        return self._document

    def alias(self, alias: str) -> Alias | None:
        found = self.aliases.get(alias)
        return None if found is None else replace(found, protection=self.protections.get(alias))

    def alias_list(self) -> list[Alias]:
        return [a for a in (self.alias(alias) for alias in sorted(self.aliases)) if a is not None]

    def aliases_of(self, number: int) -> list[str]:
        return sorted(alias for alias, a in self.aliases.items() if a.version_number == number)


@dataclass
class _VersionRecord:
    version: ModelVersion  # without aliases: they live in the model's record
    request_key: str
    purged: bool = False
    history: dict[str, list[MetricPoint]] = field(default_factory=dict)
    summary_of: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)  # (step, time)
    _document: Document | None = None

    def set(self, version: ModelVersion) -> None:
        self.version = replace(version, aliases=[]) if version.aliases else version
        self._document = None

    def document(self) -> Document:
        if self._document is None:
            if self.purged:
                name = self.version.name
                self._document = {
                    "_id": version_key(name.model_name, name.number),
                    "namespace": name.namespace,
                    "model_id": name.model,
                    "number": name.number,
                    "deleted": True,
                    "purged": True,
                }
            else:
                self._document = version_document(self.version, self.request_key)
        return self._document


class MemoryState:
    """What one registry's stores share: the records, the locks and the event trail."""

    def __init__(self) -> None:
        self.namespaces: dict[str, _NamespaceRecord] = {}
        self.models: dict[str, _ModelRecord] = {}
        self.versions: dict[str, _VersionRecord] = {}
        # Request keys of version creates (-> the version made) and of LogMetrics calls (-> None).
        self.requests: dict[str, ModelVersionName | None] = {}
        self.fingerprints: dict[str, str] = {}  # request key -> fingerprint (MemoryRequestStore)
        self.locks = DocumentLocks()
        self.events = MemoryEventLog()

    def model(self, name: ModelName, *, include_deleted: bool = False) -> _ModelRecord:
        record = self.models.get(model_key(name))
        if record is None or (record.model.deleted and not include_deleted):
            raise NotFound(f"model {name} not found")
        return record

    def version(self, name: ModelVersionName, *, include_deleted: bool = False) -> _VersionRecord:
        record = self.versions.get(version_key(name.model_name, name.number))
        if record is not None and record.purged:
            raise NotFound(f"model version {name} was purged", reason="VERSION_PURGED")
        if record is None or (record.version.deleted and not include_deleted):
            raise NotFound(f"model version {name} not found")
        return record


def _with_aliases(version: ModelVersion, model: _ModelRecord) -> ModelVersion:
    aliases = model.aliases_of(version.number)
    return replace(version, aliases=aliases) if aliases else version


def _find(
    docs: list[Document], conditions: list[Document], sort: list[tuple[str, bool]], search: Search
) -> tuple[list[Document], Cursor | None]:
    """The page of `docs` a search asks for (the page's documents and where the next starts)."""
    if search.after is not None:
        conditions = [*conditions, keyset_after(sort, search.after.values, search.after.key)]
    matches = predicate({"$and": [c for c in conditions if c]})
    order = [(path, -1 if descending else 1) for path, descending in sort] + [("_id", 1)]
    found = sort_documents([doc for doc in docs if matches(doc)], order)[: search.limit + 1]
    return split_page(found, search.limit, sort)


class MemoryNamespaceStore:
    def __init__(self, state: MemoryState):
        self._state = state

    async def insert_namespace(self, namespace: Namespace, request_key: str, event: EventFor) -> Namespace:
        await _io()
        existing = self._state.namespaces.get(namespace.name.namespace)
        if existing is not None:
            if request_key and existing.request_key == request_key:
                return existing.namespace  # a retry of the create that made it
            raise AlreadyExists(f"namespace {namespace.name} already exists")
        entry = event(None, namespace)
        self._state.namespaces[namespace.name.namespace] = _NamespaceRecord(namespace, request_key)
        self._state.events.append(entry)
        return namespace

    async def ensure_namespace(self, namespace: Namespace, event: EventFor) -> None:
        await _io()
        if namespace.name.namespace in self._state.namespaces:
            return
        entry = event(None, namespace)
        self._state.namespaces[namespace.name.namespace] = _NamespaceRecord(namespace, "")
        self._state.events.append(entry)

    async def get_namespace(self, name: NamespaceName) -> Namespace:
        await _io()
        record = self._state.namespaces.get(name.namespace)
        if record is None:
            raise NotFound(f"namespace {name} not found")
        return record.namespace

    async def list_namespaces(self, limit: int, after: str | None) -> list[Namespace]:
        await _io()
        keys = sorted(k for k in self._state.namespaces if after is None or k > after)[:limit]
        return [self._state.namespaces[k].namespace for k in keys]

    async def update_namespace(
        self,
        name: NamespaceName,
        mutate: Callable[[Namespace], Namespace],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Namespace, Namespace]:
        async with self._state.locks.hold(name.namespace):
            await _io()
            record = self._state.namespaces.get(name.namespace)
            if record is None:
                raise NotFound(f"namespace {name} not found")
            before = record.namespace
            if expected_etag and expected_etag != before.etag:
                raise Aborted(
                    f"namespace {name} changed since it was read (etag mismatch); read it and retry"
                )
            after = mutate(before)
            entry = event(before, after)
            record.namespace = after
            self._state.events.append(entry)
            return before, after


class MemoryModelStore:
    """Models, their aliases and the aliases' protections, one record per model."""

    def __init__(self, state: MemoryState):
        self._state = state

    async def insert_model(self, model: Model, request_key: str, event: EventFor) -> Model:
        await _io()
        existing = self._state.models.get(model_key(model.name))
        if existing is not None:
            if request_key and existing.request_key == request_key:
                return existing.current()  # a retry of the create that made it
            if existing.model.deleted:
                raise AlreadyExists(
                    f"model {model.name} exists and is deleted; UndeleteModel restores it",
                    reason="MODEL_DELETED",
                )
            raise AlreadyExists(f"model {model.name} already exists")
        entry = event(None, model)
        self._state.models[model_key(model.name)] = _ModelRecord(
            model, request_key, model.latest_version_number
        )
        self._state.events.append(entry)
        return model

    async def get_model(self, name: ModelName, *, include_deleted: bool = False) -> Model:
        await _io()
        return self._state.model(name, include_deleted=include_deleted).current()

    async def search_models(self, parent: NamespaceName, search: Search) -> Page[Model]:
        await _io()
        scope: Document = {"namespace": parent.namespace}
        if not search.show_deleted:
            scope["deleted"] = False
        docs = [record.document() for record in self._state.models.values()]
        sort = sort_spec(search.order)
        shown, following = _find(docs, [scope, compile_condition(search.condition)], sort, search)
        return Page([self._state.models[doc["_id"]].current() for doc in shown], following)

    async def update_model(
        self,
        name: ModelName,
        mutate: Callable[[Model], Model],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[Model, Model]:
        async with self._state.locks.hold(model_key(name)):
            await _io()
            record = self._state.model(name, include_deleted=include_deleted)
            before = record.current()
            if expected_etag and expected_etag != before.etag:
                raise Aborted(f"model {name} changed since it was read (etag mismatch); read it and retry")
            after = mutate(before)
            entry = event(before, after)
            record.set(after)  # the version counter is the record's, raised by version creates only
            self._state.events.append(entry)
            return before, after

    # Aliases

    async def get_alias(self, name: AliasName) -> Alias:
        await _io()
        alias = self._state.model(name.model_name).alias(name.alias)
        if alias is None:
            raise NotFound(f"alias {name} not found")
        return alias

    async def list_aliases(self, model: ModelName) -> list[Alias]:
        await _io()
        return self._state.model(model).alias_list()

    async def change_alias(
        self,
        name: AliasName,
        change: Callable[[Alias | None, AliasProtection | None], Awaitable[Alias | None]],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Alias | None, Alias | None]:
        async with self._state.locks.hold(model_key(name.model_name)):
            await _io()
            record = self._state.model(name.model_name)
            before = record.alias(name.alias)
            if expected_etag and (before is None or before.etag != expected_etag):
                if before is None:
                    raise NotFound(f"alias {name} not found")
                raise Aborted(f"alias {name} was moved by someone else (etag mismatch); read it and retry")
            after = await change(before, record.protections.get(name.alias))
            if after is before:
                return before, after  # nothing to change (the alias already points there)
            aliases = dict(record.aliases)
            if after is None:
                aliases.pop(name.alias, None)
            else:
                aliases[name.alias] = replace(after, protection=None)
            if len(aliases) > MAX_ALIASES_PER_MODEL:
                raise FailedPrecondition(
                    f"model {name.model_name} already has {MAX_ALIASES_PER_MODEL} aliases; delete one first",
                    reason="TOO_MANY_ALIASES",
                )
            entry = event(before, after)
            record.aliases = aliases
            self._state.events.append(entry)
            return before, after

    async def get_protection(self, name: AliasName) -> AliasProtection | None:
        await _io()
        return self._state.model(name.model_name).protections.get(name.alias)

    async def change_protection(
        self,
        name: AliasName,
        change: Callable[[AliasProtection | None, Alias | None], AliasProtection | None],
        event: EventFor,
    ) -> tuple[AliasProtection | None, AliasProtection | None]:
        async with self._state.locks.hold(model_key(name.model_name)):
            await _io()
            record = self._state.model(name.model_name)
            protections = dict(record.protections)
            before = protections.get(name.alias)
            after = change(before, record.alias(name.alias))
            if after is None:
                protections.pop(name.alias, None)
            else:
                protections[name.alias] = after
            if len(protections) > MAX_ALIASES_PER_MODEL:
                raise FailedPrecondition(
                    f"model {name.model_name} already protects {MAX_ALIASES_PER_MODEL} aliases",
                    reason="TOO_MANY_ALIASES",
                )
            entry = event(before, after)
            record.protections = protections
            self._state.events.append(entry)
            return before, after


class MemoryVersionStore:
    def __init__(self, state: MemoryState):
        self._state = state

    async def insert_version(
        self,
        model: ModelName,
        version: Callable[[ModelVersionName], ModelVersion],
        request_key: str,
        event: EventFor,
    ) -> ModelVersion:
        """Stores a new version of `model` under its next free number (`version` makes it)."""
        await _io()
        if request_key and (made := self._state.requests.get(request_key)) is not None:
            return await self.get_version(made, include_deleted=True)
        record = self._state.model(model)
        number = record.latest_version_number + 1
        numbered = version(model.version(number))
        entry = event(None, numbered)
        self._state.versions[version_key(model, number)] = _VersionRecord(numbered, request_key)
        record.raise_counter(number)
        if request_key:
            self._state.requests[request_key] = numbered.name
        self._state.events.append(entry)
        return numbered

    async def get_version(self, name: ModelVersionName, *, include_deleted: bool = False) -> ModelVersion:
        await _io()
        model = self._state.model(name.model_name)
        return _with_aliases(self._state.version(name, include_deleted=include_deleted).version, model)

    async def get_version_by_alias(self, name: AliasName) -> ModelVersion:
        await _io()
        model = self._state.model(name.model_name)
        alias = model.aliases.get(name.alias)
        if alias is None:
            raise NotFound(f"alias {name} not found")
        version_name = alias.model_version
        try:
            record = self._state.version(version_name)
        except NotFound:
            raise NotFound(f"alias {name} points at {version_name}, which is deleted") from None
        return _with_aliases(record.version, model)

    async def search_versions(self, parent: ModelName | NamespaceName, search: Search) -> Page[ModelVersion]:
        await _io()
        scope: Document = {"namespace": parent.namespace}
        if isinstance(parent, ModelName):
            scope["model_id"] = parent.model
        # Tombstones of purged versions are `deleted` too: shown deleted versions exclude them.
        scope |= {"deleted": False} if not search.show_deleted else {"purged": {"$ne": True}}
        docs = [record.document() for record in self._state.versions.values()]
        sort = sort_spec(search.order)
        shown, following = _find(docs, [scope, compile_condition(search.condition)], sort, search)
        versions: list[ModelVersion] = []
        for doc in shown:
            model = self._state.models.get(f"{doc['namespace']}/{doc['model_id']}")
            if model is None or (model.model.deleted and not search.show_deleted):
                continue  # the versions of a deleted model are hidden, the cursor moves past them
            versions.append(_with_aliases(self._state.versions[doc["_id"]].version, model))
        return Page(versions, following)

    async def confirm_version(self, version: ModelVersion) -> None:
        # One process: the model's lock orders alias moves and version changes already. Still
        # refuse a version changed since it was read, as the MongoDB store does.
        current = self._state.version(version.name, include_deleted=True).version
        if current.etag != version.etag:
            raise Aborted(f"model version {version.name} changed while an alias moved to it; retry")

    async def update_version(
        self,
        name: ModelVersionName,
        mutate: Callable[[ModelVersion, dict[str, AliasProtection]], ModelVersion],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[ModelVersion, ModelVersion]:
        locks = self._state.locks
        # The model's lock too, as in the MongoDB store: alias moves check versions under it.
        async with (
            locks.hold(model_key(name.model_name)),
            locks.hold(version_key(name.model_name, name.number)),
        ):
            await _io()
            model = self._state.model(name.model_name)
            record = self._state.version(name, include_deleted=include_deleted)
            before = _with_aliases(record.version, model)
            if expected_etag and expected_etag != before.etag:
                raise Aborted(
                    f"model version {name} changed since it was read (etag mismatch); read it and retry"
                )
            after = mutate(before, dict(model.protections))
            if after is before:
                return before, after  # nothing to change (e.g. the same file added again)
            entry = event(before, after)
            record.set(after)
            self._state.events.append(entry)
            return before, after

    async def purge_version(
        self,
        name: ModelVersionName,
        check: Callable[[ModelVersion], None],
        expected_etag: str,
        event: EventFor,
    ) -> None:
        """The version becomes a tombstone (its number stays taken) and its history goes; a purge
        here is never interrupted, so purging again is NOT_FOUND at once."""
        locks = self._state.locks
        async with (
            locks.hold(model_key(name.model_name)),
            locks.hold(version_key(name.model_name, name.number)),
        ):
            await _io()
            record = self._state.versions.get(version_key(name.model_name, name.number))
            if record is None:
                raise NotFound(f"model version {name} not found")
            if record.purged:
                raise NotFound(f"model version {name} was purged already", reason="VERSION_PURGED")
            model = self._state.model(name.model_name)
            before = _with_aliases(record.version, model)
            if expected_etag and expected_etag != before.etag:
                raise Aborted(
                    f"model version {name} changed since it was read (etag mismatch); read it and retry"
                )
            check(before)
            entry = event(before, None)
            record.purged = True
            record.history = {}
            record.summary_of = {}
            record.set(replace(before, files=[], deleted=True))
            self._state.events.append(entry)

    async def purgeable(self, deleted_before: datetime) -> list[ModelVersionName]:
        await _io()
        return [
            record.version.name
            for record in self._state.versions.values()
            if not record.purged
            and record.version.deleted
            and record.version.update_time is not None
            and record.version.update_time < deleted_before
        ]

    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_key: str, event: EventFor
    ) -> tuple[ModelVersion, ModelVersion]:
        async with self._state.locks.hold(version_key(name.model_name, name.number)):
            await _io()
            if request_key and request_key in self._state.requests:
                current = await self.get_version(name)
                return current, current  # a retry of a call that already logged its points
            model = self._state.model(name.model_name)
            record = self._state.version(name)
            before = _with_aliases(record.version, model)
            by_key: dict[str, list[MetricPoint]] = {}
            for point in points:
                by_key.setdefault(point.key, []).append(replace(point, time=_stored_time(point.time)))
            metrics = dict(before.metrics)
            summary_of = dict(record.summary_of)
            for metric, series in by_key.items():
                latest = max(series, key=lambda p: (p.step, p.time))
                previous = summary_of.get(metric)
                if previous is None or (latest.step, latest.time) >= previous:
                    metrics[metric] = latest.value
                    summary_of[metric] = (latest.step, latest.time)
            after = replace(before, metrics=metrics, update_time=now(), etag=new_etag())
            entry = event(before, after)
            for metric, series in by_key.items():
                record.history.setdefault(metric, []).extend(series)
            record.summary_of = summary_of
            record.set(after)
            if request_key:
                self._state.requests[request_key] = None
            self._state.events.append(entry)
            return before, after

    async def metric_history(
        self, name: ModelVersionName, metric: str, start: tuple[int, int], limit: int
    ) -> tuple[list[MetricPoint], tuple[int, int] | None]:
        """Points from (bucket, offset) `start` on, and where the next page starts."""
        await _io()
        history = self._state.version(name).history.get(metric, [])
        points: list[MetricPoint] = []
        bucket, offset = start
        while len(points) < limit:
            stored = history[bucket * POINTS_PER_BUCKET : (bucket + 1) * POINTS_PER_BUCKET]
            if not stored:
                return points, None
            taken = stored[offset : offset + limit - len(points)]
            points += taken
            offset += len(taken)
            if offset >= len(stored):
                bucket, offset = bucket + 1, 0
        return points, (bucket, offset)


class MemoryRequestStore:
    def __init__(self, state: MemoryState):
        self._state = state

    async def claim(self, request_key: str, fingerprint: str) -> str:
        await _io()
        return self._state.fingerprints.setdefault(request_key, fingerprint)


class MemoryBlobReferences:
    def __init__(self, state: MemoryState):
        self._state = state

    async def referenced(self, digests: list[str]) -> list[str]:
        wanted = set(check_digests(digests))
        if not wanted:
            return []
        await _io()
        # Soft-deleted versions keep their blobs until they are purged.
        found = {
            file.sha256
            for record in self._state.versions.values()
            if not record.purged
            for file in record.version.files
            if file.sha256 in wanted
        }
        return [d for d in dict.fromkeys(digests) if d in found]
