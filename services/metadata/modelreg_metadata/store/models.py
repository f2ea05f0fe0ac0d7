"""The model store: a model's document also holds its aliases and their protections, so an alias
move or a protection change is one single-document write, checked under the model's lock.

It also keeps the models' `latest_version_number` counters, the hint from which version numbers
are allocated (store/version_creates.py), through the database's view (store/view.py), which on
FerretDB raises them in its replica and writes them later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from modelreg_api.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from modelreg_api.names import AliasName, ModelName, NamespaceName
from pymongo.errors import DuplicateKeyError

from modelreg_metadata.audit.outbox_entry import outbox_entry
from modelreg_metadata.domain import MAX_ALIASES_PER_MODEL, Alias, AliasProtection, Model
from modelreg_metadata.search import Page, Search
from modelreg_metadata.store import EventFor, fences
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import (
    Document,
    alias_entry,
    aliases_from,
    model_document,
    model_fields,
    model_from,
    model_key,
    protection_entry,
    protections_from,
)
from modelreg_metadata.store.query import compile_condition, sort_spec, split_page
from modelreg_metadata.store.view import find_page


class MongoModelStore:
    """Models and their aliases (kept inside the model's document)."""

    def __init__(self, database: MongoDatabase):
        self._db = database
        self._models = database.models

    async def insert_model(self, model: Model, request_key: str, event: EventFor) -> Model:
        entry = outbox_entry(event(None, model))
        doc = {**model_document(model, request_key), "outbox": [entry]}
        try:
            await self._models.insert_one(doc)
            self._db.committed("models", doc["_id"], entry)
            self._db.view.model_written(doc)
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
        doc = await self._db.view.model(name)
        if doc is None or (doc.get("deleted") and not include_deleted):
            raise NotFound(f"model {name} not found")
        return doc

    async def get_model(self, name: ModelName, *, include_deleted: bool = False) -> Model:
        return model_from(await self.model_document(name, include_deleted=include_deleted))

    async def search_models(self, parent: NamespaceName, search: Search) -> Page[Model]:
        await self._db.view.before_model_search()
        scope: Document = {"namespace": parent.namespace}
        if not search.show_deleted:
            scope["deleted"] = False
        condition = compile_condition(search.condition)
        sort = sort_spec(search.order)
        docs = await find_page(self._models, [scope, condition], sort, search.limit + 1, search.after)
        shown, following = split_page(docs, search.limit, sort)
        return Page([model_from(doc) for doc in shown], following)

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
            self._db.view.model_changed(doc, changes)
            return before, after

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
            for attempt in range(1, fences.MAX_ATTEMPTS + 1):
                try:
                    return await self._change_alias_once(name, change, expected_etag, event)
                except fences.ConcurrentWrite:
                    if attempt == fences.MAX_ATTEMPTS:
                        raise
                    # Another process wrote the model or the target version first: decide again.
        raise AssertionError("unreachable")

    async def _change_alias_once(
        self,
        name: AliasName,
        change: Callable[[Alias | None, AliasProtection | None], Awaitable[Alias | None]],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Alias | None, Alias | None]:
        key = model_key(name.model_name)
        doc = await self.model_document(name.model_name)
        aliases = {a.name.alias: a for a in aliases_from(doc)}
        before = aliases.get(name.alias)
        if expected_etag and (before is None or before.etag != expected_etag):
            if before is None:
                raise NotFound(f"alias {name} not found")
            raise Aborted(f"alias {name} was moved by someone else (etag mismatch); read it and retry")
        after = await change(before, protections_from(doc).get(name.alias))
        if after is before:
            return before, after  # nothing to change (the alias already points there)
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
            raise fences.ConcurrentWrite(f"alias {name} changed concurrently; retry")
        self._db.committed("models", key, entry)
        self._db.view.model_changed(doc, {"aliases": entries})
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
            self._db.view.model_changed(doc, {"alias_protections": entries})
            return before, after
