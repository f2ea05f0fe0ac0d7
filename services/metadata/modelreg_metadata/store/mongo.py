"""The MongoDB stores (PyMongo's async API), within the subset FerretDB v1 supports.

No multi-document transactions exist there, so every invariant lives in one document or is
guarded by a unique index plus retry:
- (namespace, model_id) is unique per model;
- (model_uid, number) is unique per version: the next number is read as max+1 and inserted,
  and a duplicate-key error means another writer took it, so we read again. Numbers are
  therefore gap-free even if a writer dies (no counter is reserved before the insert);
- (model_uid, alias) is unique per alias; moves compare-and-set on the alias's etag;
- a version's manifest changes by compare-and-set on the version's etag.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from modelreg.names import AliasName, ModelName, ModelVersionName
from modelreg_common.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from modelreg_metadata.domain import Alias, Model, ModelFile, ModelVersion, VersionState, manifest_digest
from modelreg_metadata.store.documents import (
    Document,
    alias_document,
    alias_from,
    file_document,
    model_document,
    model_from,
    version_document,
    version_from,
)

MAX_NUMBER_ATTEMPTS = 500  # far above any realistic number of simultaneous writers on one model
MAX_CAS_ATTEMPTS = 100


def now() -> datetime:
    # MongoDB stores milliseconds; truncating here keeps what we return equal to what we read back.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_etag() -> str:
    return uuid.uuid4().hex[:16]


async def _backoff(attempt: int) -> None:
    # Jitter spreads colliding writers apart so each retry round has one clear winner.
    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))  # noqa: S311 - jitter, not crypto


class MongoDatabase:
    """Owns the client and the collections; created inside the running event loop."""

    def __init__(self, uri: str, database: str):
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="modelreg-metadata"
        )
        self.db: AsyncDatabase[Document] = self.client[database]
        self.models: AsyncCollection[Document] = self.db["models"]
        self.versions: AsyncCollection[Document] = self.db["model_versions"]
        self.aliases: AsyncCollection[Document] = self.db["aliases"]

    async def ensure_indexes(self) -> None:
        indexes = {
            self.models: [
                IndexModel(
                    [("namespace", ASCENDING), ("model_id", ASCENDING)], unique=True, name="model_name"
                ),
            ],
            self.versions: [
                IndexModel(
                    [("model_uid", ASCENDING), ("number", ASCENDING)], unique=True, name="version_number"
                ),
                IndexModel(
                    [("namespace", ASCENDING), ("model_id", ASCENDING), ("number", ASCENDING)],
                    unique=True,
                    name="version_name",
                ),
            ],
            self.aliases: [
                IndexModel([("model_uid", ASCENDING), ("alias", ASCENDING)], unique=True, name="alias_key"),
                IndexModel(
                    [("namespace", ASCENDING), ("model_id", ASCENDING), ("alias", ASCENDING)],
                    name="alias_name",
                ),
            ],
        }
        for collection, models in indexes.items():
            # One index per command: FerretDB v1.24 panics on a multi-index createIndexes when the
            # indexes already exist (every restart), while one at a time is an idempotent no-op.
            for index in models:
                await collection.create_indexes([index])

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()


class MongoModelStore:
    def __init__(self, database: MongoDatabase):
        self._models = database.models

    async def insert_model(self, model: Model) -> Model:
        try:
            await self._models.insert_one(model_document(model))
        except DuplicateKeyError:
            raise AlreadyExists(f"model {model.name} already exists") from None
        return model

    async def get_model(self, name: ModelName) -> Model:
        doc = await self._models.find_one(
            {"namespace": name.namespace, "model_id": name.model, "deleted": False}
        )
        if doc is None:
            raise NotFound(f"model {name} not found")
        return model_from(doc)

    async def list_models(self, namespace: str, limit: int, after: str | None) -> list[Model]:
        query: Document = {"namespace": namespace, "deleted": False}
        if after is not None:
            query["model_id"] = {"$gt": after}
        cursor = self._models.find(query).sort("model_id", ASCENDING).limit(limit)
        return [model_from(doc) async for doc in cursor]


class MongoVersionStore:
    def __init__(self, database: MongoDatabase):
        self._models = database.models
        self._versions = database.versions
        self._aliases = database.aliases

    async def insert_version(self, model: Model, version: ModelVersion) -> ModelVersion:
        for attempt in range(MAX_NUMBER_ATTEMPTS):
            last = await self._versions.find_one(
                {"model_uid": model.uid}, sort=[("number", DESCENDING)], projection={"number": True}
            )
            numbered = replace(version, name=model.name.version((last["number"] if last else 0) + 1))
            try:
                await self._versions.insert_one(version_document(numbered))
            except DuplicateKeyError:
                await _backoff(attempt)
                continue
            await self._models.update_one(
                {"_id": model.uid}, {"$max": {"latest_version_number": numbered.number}}
            )
            return numbered
        raise Aborted(f"too many concurrent writers on {model.name}; retry the request")

    async def _version_document(self, name: ModelVersionName) -> Document:
        doc = await self._versions.find_one(
            {"namespace": name.namespace, "model_id": name.model, "number": name.number, "deleted": False}
        )
        if doc is None:
            raise NotFound(f"model version {name} not found")
        return doc

    async def _aliases_of(self, model_uid: str, number: int) -> list[str]:
        cursor = self._aliases.find({"model_uid": model_uid, "version_number": number}, {"alias": True})
        return [doc["alias"] async for doc in cursor]

    async def get_version(self, name: ModelVersionName) -> ModelVersion:
        doc = await self._version_document(name)
        return version_from(doc, await self._aliases_of(doc["model_uid"], name.number))

    async def list_versions(self, model: Model, limit: int, after: int | None) -> list[ModelVersion]:
        query: Document = {"model_uid": model.uid, "deleted": False}
        if after is not None:
            query["number"] = {"$gt": after}
        cursor = self._versions.find(query).sort("number", ASCENDING).limit(limit)
        docs = [doc async for doc in cursor]
        aliases = await MongoAliasStore.aliases_by_version_in(self._aliases, model.uid)
        return [version_from(doc, aliases.get(doc["number"])) for doc in docs]

    async def add_files(self, name: ModelVersionName, added: list[ModelFile]) -> ModelVersion:
        """Add files to the manifest in one change, in order (a later file replaces an earlier path)."""
        for attempt in range(MAX_CAS_ATTEMPTS):
            doc = await self._version_document(name)
            version = version_from(doc)
            if version.state is not VersionState.PENDING:
                raise FailedPrecondition(
                    f"model version {name} is {version.state.value}; files can be added only while PENDING",
                    reason="VERSION_SEALED",
                )
            files = {f.path: f for f in version.files}
            changed = False
            for file in added:
                current = files.get(file.path)
                if current and (current.sha256, current.size_bytes) == (file.sha256, file.size_bytes):
                    continue
                files[file.path] = file
                changed = True
            if not changed:
                return await self.get_version(name)
            ordered = sorted(files.values(), key=lambda f: f.path)
            update: dict[str, Any] = {
                "files": [file_document(f) for f in ordered],
                "manifest_digest": manifest_digest(ordered),
                "etag": new_etag(),
                "update_time": now(),
            }
            result = await self._versions.update_one(
                {"_id": version.uid, "etag": version.etag}, {"$set": update}
            )
            if result.matched_count == 1:
                return await self.get_version(name)
            await _backoff(attempt)
        raise Aborted(f"too many concurrent changes to {name}; retry the request")

    async def seal(self, name: ModelVersionName, expected_etag: str) -> ModelVersion:
        doc = await self._version_document(name)
        version = version_from(doc)
        if expected_etag and version.etag != expected_etag:
            raise Aborted(
                f"model version {name} changed since it was read (etag mismatch); read it and retry"
            )
        if version.state is VersionState.READY:
            return await self.get_version(name)
        if version.state is not VersionState.PENDING:
            raise FailedPrecondition(
                f"model version {name} is {version.state.value}; only a PENDING version can be sealed",
                reason="VERSION_NOT_PENDING",
            )
        # Compare-and-set on the etag: a file added concurrently either lands before the seal
        # (and is part of the sealed manifest) or is refused after it, never half-way.
        result = await self._versions.update_one(
            {"_id": version.uid, "etag": version.etag, "state": VersionState.PENDING.value},
            {"$set": {"state": VersionState.READY.value, "etag": new_etag(), "update_time": now()}},
        )
        if result.matched_count != 1:
            raise Aborted(f"model version {name} changed while sealing; retry")
        return await self.get_version(name)


class MongoAliasStore:
    def __init__(self, database: MongoDatabase):
        self._aliases = database.aliases

    async def set_alias(self, model: Model, alias: Alias, expected_etag: str) -> Alias:
        fields = {
            "version_number": alias.version_number,
            "update_time": alias.update_time,
            "update_actor": alias.update_actor,
            "etag": new_etag(),
        }
        key = {"model_uid": model.uid, "alias": alias.name.alias}
        if expected_etag:
            doc = await self._aliases.find_one_and_update(
                {**key, "etag": expected_etag}, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
            if doc is None:
                await self.get_alias(alias.name)  # NotFound when the alias does not exist at all
                raise Aborted(
                    f"alias {alias.name} was moved by someone else (etag mismatch); read it and retry"
                )
            return alias_from(doc)
        insert = alias_document(model.uid, alias)
        for field in fields:
            insert.pop(field)
        for _ in range(2):  # two first-time upserts can race on the unique index; the loser retries once
            try:
                doc = await self._aliases.find_one_and_update(
                    key,
                    {"$set": fields, "$setOnInsert": insert},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if doc is not None:
                return alias_from(doc)
        raise Aborted(f"alias {alias.name} is being created concurrently; retry")

    async def get_alias(self, name: AliasName) -> Alias:
        doc = await self._aliases.find_one(
            {"namespace": name.namespace, "model_id": name.model, "alias": name.alias}
        )
        if doc is None:
            raise NotFound(f"alias {name} not found")
        return alias_from(doc)

    async def aliases_by_version(self, model_uid: str) -> dict[int, list[str]]:
        return await self.aliases_by_version_in(self._aliases, model_uid)

    @staticmethod
    async def aliases_by_version_in(
        aliases: AsyncCollection[Document], model_uid: str
    ) -> dict[int, list[str]]:
        result: dict[int, list[str]] = {}
        async for doc in aliases.find({"model_uid": model_uid}, {"alias": True, "version_number": True}):
            result.setdefault(doc["version_number"], []).append(doc["alias"])
        return result
