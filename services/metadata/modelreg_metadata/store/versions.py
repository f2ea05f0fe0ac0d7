"""The version store: reads and searches of versions, their updates, purges and metric histories.

Creates are in store/version_creates.py (numbering and group commit). A version's aliases live in
its model's document (store/models.py), so reads of a version also read its model, by `_id`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from modelreg_api.errors import Aborted, NotFound
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from pymongo import DeleteOne

from modelreg_metadata.audit.outbox_entry import outbox_entry
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import AliasProtection, MetricPoint, ModelVersion
from modelreg_metadata.search import Page, Search
from modelreg_metadata.store import EventFor, fences, series
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import (
    MAX_UPDATES_PER_COMMAND,
    Document,
    aliases_of_version,
    encoded_map,
    merged,
    model_key,
    pairs,
    protections_from,
    version_fields,
    version_key,
)
from modelreg_metadata.store.models import MongoModelStore
from modelreg_metadata.store.query import compile_condition, sort_spec, split_page
from modelreg_metadata.store.version_creates import VersionCreates

POINTS_PER_SERIES_DOCUMENT = 1000
# What a purged version's tombstone keeps (see MongoVersionStore.purge_version), besides
# `revision`, `outbox` and, until its history is deleted, `metric_meta`.
TOMBSTONE_FIELDS = ("namespace", "model_id", "number", "uid", "model_uid", "request_key")


class MongoVersionStore:
    def __init__(self, database: MongoDatabase, models: MongoModelStore):
        self._db = database
        self._models = models
        self._versions = database.versions
        self._requests = database.requests
        self._series = database.series
        self._creates = VersionCreates(
            database, models, lambda name: self.get_version(name, include_deleted=True)
        )

    async def insert_version(
        self,
        model: ModelName,
        version: Callable[[ModelVersionName], ModelVersion],
        request_key: str,
        event: EventFor,
    ) -> ModelVersion:
        """Stores a new version of `model` under its next free number (store/version_creates.py)."""
        return await self._creates.insert_version(model, version, request_key, event)

    async def _version_document(self, name: ModelVersionName, *, include_deleted: bool = False) -> Document:
        doc = await self._db.view.version(name)
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
        return self._db.view.version_from(doc, aliases_of_version(model_doc, name.number))

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
        return self._db.view.version_from(doc, aliases_of_version(model_doc, number))

    async def search_versions(self, parent: ModelName | NamespaceName, search: Search) -> Page[ModelVersion]:
        scope: Document = {"namespace": parent.namespace}
        if isinstance(parent, ModelName):
            scope["model_id"] = parent.model
        # Tombstones of purged versions are `deleted` too: shown deleted versions exclude them.
        show_deleted = search.show_deleted
        scope = {**scope, "deleted": False} if not show_deleted else {**scope, "purged": {"$ne": True}}
        condition = compile_condition(search.condition)
        sort = sort_spec(search.order)
        docs = await self._db.view.find_versions(scope, condition, sort, search.limit + 1, search.after)
        shown, following = split_page(docs, search.limit, sort)
        model_keys = sorted({f"{doc['namespace']}/{doc['model_id']}" for doc in shown})
        found = await asyncio.gather(*(self._db.models.find_one({"_id": key}) for key in model_keys))
        models = {key: doc for key, doc in zip(model_keys, found, strict=True) if doc is not None}
        versions: list[ModelVersion] = []
        for doc in shown:
            model_doc = models.get(f"{doc['namespace']}/{doc['model_id']}")
            if model_doc is None or (model_doc.get("deleted") and not show_deleted):
                # The versions of a deleted model are deleted with it: hidden, but the page's
                # cursor still moves past them.
                continue
            versions.append(self._db.view.version_from(doc, aliases_of_version(model_doc, doc["number"])))
        return Page(versions, following)

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
        # and an alias move of the same model never interleave in this process; across processes
        # the fence does it (store/fences.py).
        async with self._db.locks.hold(model_key(name.model_name)), self._db.locks.hold(key):
            for attempt in range(1, fences.MAX_ATTEMPTS + 1):
                model_doc, doc = await asyncio.gather(
                    self._models.model_document(name.model_name),
                    self._version_document(name, include_deleted=include_deleted),
                )
                before = self._db.view.version_from(doc, aliases_of_version(model_doc, name.number))
                if expected_etag and expected_etag != before.etag:
                    raise Aborted(
                        f"model version {name} changed since it was read (etag mismatch); read it and retry"
                    )
                after = mutate(before, protections_from(model_doc))
                if after is before:
                    return before, after  # nothing to change (e.g. the same file added again)
                try:
                    if fences.admission_changed(before, after):
                        await fences.fence_model(self._db, model_doc["_id"], model_doc.get("revision", 0))
                    await self._write_version(
                        name, doc, version_fields(after), outbox_entry(event(before, after))
                    )
                except fences.ConcurrentWrite:
                    if attempt == fences.MAX_ATTEMPTS:
                        raise
                    continue  # another process wrote first: read again and decide again
                return before, after
        raise AssertionError("unreachable")

    async def confirm_version(self, version: ModelVersion) -> None:
        await fences.confirm_version(
            self._db, version_key(version.name.model_name, version.name.number), version.etag
        )

    async def _write_version(
        self,
        name: ModelVersionName,
        doc: Document,
        changes: Document,
        entry: Document,
        *,
        removed: Sequence[str] = (),
    ) -> None:
        """`$set` the changes (and `$unset` the `removed` fields) with their outbox entry, and tell
        the view (on FerretDB, its replica gets the same document).

        Shielded: a caller cancelled while the write is in flight (a client that gave up) must not
        leave the database changed and the view not told. Should the write fail in a way that
        leaves its outcome unknown, the view is told that too (the replica then reads the version
        from the database again).
        """
        key = doc["_id"]

        update: Document = {"$set": changes, "$inc": {"revision": 1}, "$push": {"outbox": entry}}
        if removed:
            update["$unset"] = dict.fromkeys(removed, "")

        async def write() -> None:
            result = await self._versions.update_one(self._db.cas_filter(key, doc.get("revision", 0)), update)
            if result.matched_count != 1:
                raise fences.ConcurrentWrite(f"model version {name} changed concurrently; retry")
            self._db.committed("model_versions", key, entry)
            self._db.view.version_changed(doc, changes, removed)

        try:
            await asyncio.shield(write())
        except Exception:
            self._db.view.version_unknown(doc)
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
          relay has placed it in the trail (audit/outbox.py), so deleting the document would
          delete the event with it, and with it any entry of an earlier change not placed yet.
          The tombstone keeps `outbox` and `revision`: replacing the version by it and pushing
          the event is one single-document write, so the change and its event commit together,
          and the relay places the event like any other.
        - The number must never be reused. Numbers are taken by inserting `_id`
          `{namespace}/{model}/{n}` (see store/version_creates.py), and a lagging counter is caught
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
            doc = await self._db.view.version(name)
            if doc is None:
                raise NotFound(f"model version {name} not found")
            if doc.get("purged"):
                if not doc.get("metric_meta"):
                    raise NotFound(f"model version {name} was purged already", reason="VERSION_PURGED")
            else:
                model_doc = await self._models.model_document(name.model_name)
                before = self._db.view.version_from(doc, aliases_of_version(model_doc, name.number))
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
        self._db.view.version_changed(tombstone, {}, ["metric_meta"])

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
            before = self._db.view.version_from(doc, aliases_of_version(model_doc, name.number))
            meta: dict[str, Document] = {m["k"]: m for m in doc.get("metric_meta", [])}
            by_key: dict[str, list[MetricPoint]] = {}
            for point in points:
                by_key.setdefault(point.key, []).append(point)
            # History first, then the summary: the version's write is the commit that makes the
            # call visible in the summary (and, later, in the audit trail). A crash in between
            # leaves extra history points and no summary change; the retry logs them again.
            for metric, logged in by_key.items():
                count = meta.get(metric, {}).get("points", 0)
                await self._append_series(key, metric, count, logged)
            metrics = dict(before.metrics)
            for metric, logged in by_key.items():
                latest = max(logged, key=lambda p: (p.step, p.time))
                previous = meta.get(metric)
                count = (previous or {}).get("points", 0) + len(logged)
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
        position = count
        while points:
            bucket, offset = divmod(position, POINTS_PER_SERIES_DOCUMENT)
            room = POINTS_PER_SERIES_DOCUMENT - offset
            chunk, points = points[:room], points[room:]
            await series.append(
                self._series, f"{version}|{bucket}|{metric}", chunk, atomic=self._db.atomic_updates
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
            stored = series.points_of(doc, metric)
            taken = stored[offset : offset + limit - len(points)]
            points += taken
            offset += len(taken)
            if offset >= len(stored):
                bucket, offset = bucket + 1, 0
        return points, (bucket, offset)
