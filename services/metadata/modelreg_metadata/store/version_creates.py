"""Creating versions: numbering them, and the group commit that makes concurrent creates cheap.

Version numbers are allocated without transactions: the next number is the model's
`latest_version_number` + 1 and the version is inserted under the `_id` that number gives; a
duplicate-key error means another writer took it, so we try the next. Numbers come only from
successful inserts, so they are gap-free even if a writer dies. Creates that carry a client's
request id are recorded in `requests`, and a retry answers with the version the first call made.
A version created without one stores `auto {uid}` as its `request_key`: the field has a unique
index, which would see every missing key as the same null.

Kept apart from store/versions.py because it is a unit of its own (a queue, a batch writer and
its fallback) that changes for its own reasons (throughput), while the version store around it
changes with the version's rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modelreg_api.errors import Aborted
from modelreg_api.names import ModelName, ModelVersionName
from pymongo.errors import BulkWriteError, DuplicateKeyError

from modelreg_metadata.audit.outbox_entry import outbox_entry
from modelreg_metadata.domain import ModelVersion
from modelreg_metadata.store import EventFor
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import Document, version_document
from modelreg_metadata.store.models import MongoModelStore

MAX_NUMBER_ATTEMPTS = 1000
DUPLICATE_KEY = 11000
# Under concurrent creates (the last batch had more than one), the group commit waits this long
# for more before writing: one insert, one counter update and one event insert then serve several
# creates, which is most of what a create costs on FerretDB (measured: about half the CPU).
GROUP_COMMIT_LINGER_SECONDS = 0.005


@dataclass
class _PendingCreate:
    model: ModelName
    make: Callable[[ModelVersionName], ModelVersion]  # the version under a name (its number)
    request_key: str  # the client's, or ""
    event: EventFor
    done: asyncio.Future[ModelVersion]

    def numbered(self, number: int) -> tuple[ModelVersion, Document]:
        """The version under `number`, and its document carrying its creation event."""
        version = self.make(self.model.version(number))
        doc = version_document(version, self.request_key or f"auto {version.uid}")
        return version, {**doc, "outbox": [outbox_entry(self.event(None, version))]}


class VersionCreates:
    """The version store's creates; `read_version` reads a version, deleted or not, to answer a
    retried create with the version the first call made."""

    def __init__(
        self,
        database: MongoDatabase,
        models: MongoModelStore,
        read_version: Callable[[ModelVersionName], Awaitable[ModelVersion]],
    ):
        self._db = database
        self._models = models
        self._versions = database.versions
        self._requests = database.requests
        self._read_version = read_version
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
        return await self._read_version(name)

    async def insert_version(
        self,
        model: ModelName,
        version: Callable[[ModelVersionName], ModelVersion],
        request_key: str,
        event: EventFor,
    ) -> ModelVersion:
        """Stores a new version of `model` under its next free number (`version` makes it)."""
        if request_key and (existing := await self._by_request(request_key)) is not None:
            return existing
        pending = _PendingCreate(
            model, version, request_key, event, asyncio.get_running_loop().create_future()
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
        names = list(dict.fromkeys(item.model for item in batch))
        found = await asyncio.gather(
            *(self._models.model_document(name) for name in names), return_exceptions=True
        )
        counters: dict[ModelName, int] = {}
        for name, doc in zip(names, found, strict=True):
            if isinstance(doc, BaseException):
                for item in batch:
                    if item.model == name:
                        item.done.set_exception(doc)
            else:
                counters[name] = doc.get("latest_version_number", 0)
        numbered: list[tuple[_PendingCreate, ModelVersion, Document]] = []
        for item in batch:
            if item.model in counters:
                counters[item.model] += 1
                numbered.append((item, *item.numbered(counters[item.model])))
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
                self._db.view.version_written(doc)
                latest[version.name.model_name] = version.name.number
            requests = [(item.request_key, version.name) for item, version, _ in made if item.request_key]
            await asyncio.gather(
                self._db.view.record_version_numbers(latest), self._record_requests(requests)
            )
            for item, version, _ in made:
                item.done.set_result(version)
            for item, _, _ in numbered[inserted:]:
                # The number was taken (another process, or a counter that lagged after a crash),
                # or the same request was created meanwhile: these go one at a time.
                item.done.set_result(await self._insert_alone(item))
        except Exception as exc:  # every waiting caller gets the failure, none waits forever
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)

    async def _insert_alone(self, item: _PendingCreate) -> ModelVersion:
        model_name = item.model
        model_doc = await self._models.model_document(model_name)
        number = model_doc.get("latest_version_number", 0)
        for _ in range(MAX_NUMBER_ATTEMPTS):
            number += 1
            numbered, doc = item.numbered(number)
            try:
                await self._versions.insert_one(doc)
            except DuplicateKeyError:
                if item.request_key and (
                    existing := await self._by_request(item.request_key, search_versions=True)
                ):
                    return existing  # another process created it for the same request
                continue  # the number is taken (another process, or a lagging counter)
            self._db.committed("model_versions", doc["_id"], doc["outbox"][0])
            self._db.view.version_written(doc)
            await self._db.view.record_version_numbers({model_name: number})
            if item.request_key:
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
