"""The store implementations the contract suite holds to the same rules.

Each test runs once per implementation, named by its parameter id:
- `memory`: modelreg_metadata.memory, no server (milliseconds);
- `ferretdb-replica`: the MongoDB stores on the test stack's FerretDB, as a FerretDB deployment
  runs them (one process, with the in-process replica answering reads and searches);
- `ferretdb-no-replica`: the same without the replica: reads and searches go to the database;
- `ferretdb-mongodb-semantics`: MongoDB's code path on FerretDB (`atomic_updates`: writes
  conditioned on the revision, the relay for several processes, no replica).
Against a stack on MongoDB (a Docker engine, or MODELREG_MONGODB_URI) the replica does not apply
and `mongodb` runs instead of the three FerretDB ones.

The database ones each get a database of their own, dropped at the end of the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from modelreg_api.names import ModelName, ModelVersionName, NamespaceName
from modelreg_local.stack import LocalStack
from modelreg_local.stores import docker_available
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action, EventScope
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import Model, ModelVersion, Namespace
from modelreg_metadata.memory import MemoryStores
from modelreg_metadata.store import (
    BlobReferences,
    EventFor,
    EventLog,
    ModelStore,
    NamespaceStore,
    RequestStore,
    VersionStore,
)
from modelreg_metadata.store.blob_references import MongoBlobReferences
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.models import MongoModelStore
from modelreg_metadata.store.namespaces import MongoNamespaceStore
from modelreg_metadata.store.requests import MongoRequestStore
from modelreg_metadata.store.versions import MongoVersionStore
from pymongo import AsyncMongoClient

from tests.support import unique

# id -> MongoDatabase options (None: the in-memory stores)
IMPLEMENTATIONS: dict[str, dict[str, Any] | None] = {
    "memory": None,
    "ferretdb-replica": {"replica": True},
    "ferretdb-no-replica": {"replica": False},
    "ferretdb-mongodb-semantics": {"replica": False, "atomic_updates": True},
    "mongodb": {},
}


@dataclass
class Stores:
    kind: str
    namespaces: NamespaceStore
    models: ModelStore
    versions: VersionStore
    events: EventLog
    blob_references: BlobReferences
    requests: RequestStore

    async def events_of(self, resource: str) -> list[str]:
        """The actions of the resource's events in the trail, in order (after the changes made so
        far are placed)."""
        await self.events.settle()
        return [e.action for e in await self.events.search(EventScope(resource=resource), 0, 1000)]


async def _on_ferretdb(uri: str) -> bool:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return "ferretdbVersion" in await client.admin.command("buildInfo")
    finally:
        await client.close()


def _database_kinds() -> list[str]:
    """The implementations the test stack's database can run. The local stack runs FerretDB
    unless a Docker engine answers or MODELREG_MONGODB_URI names another server (which may be
    either: then both are listed, and the one that does not match is skipped)."""
    ferretdb = ["ferretdb-replica", "ferretdb-no-replica", "ferretdb-mongodb-semantics"]
    if os.environ.get("MODELREG_MONGODB_URI"):
        return [*ferretdb, "mongodb"]
    return ["mongodb"] if docker_available() else ferretdb


@pytest.fixture(
    params=["memory", *(pytest.param(kind, marks=pytest.mark.integration) for kind in _database_kinds())]
)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    kind: str = request.param
    options = IMPLEMENTATIONS[kind]
    if options is None:
        memory = MemoryStores()
        yield Stores(
            kind,
            memory.namespaces,
            memory.models,
            memory.versions,
            memory.events,
            memory.blob_references,
            memory.requests,
        )
        return
    stack: LocalStack = request.getfixturevalue("stack")
    assert stack.metadata is not None
    uri = stack.metadata.env["MODELREG_MONGODB_URI"]
    if await _on_ferretdb(uri) != kind.startswith("ferretdb"):
        pytest.skip(f"the test stack's database is not what {kind} runs on")
    name = unique("contract").replace("-", "_")
    database = MongoDatabase(uri, name, **options)
    try:
        await database.start()
        models = MongoModelStore(database)
        yield Stores(
            kind,
            MongoNamespaceStore(database),
            models,
            MongoVersionStore(database, models),
            database.event_log,
            MongoBlobReferences(database),
            MongoRequestStore(database),
        )
    finally:
        await database.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        try:
            await client.drop_database(name)
        finally:
            await client.close()


# Resources as the registry makes them (registry/*.py stamps these before a store sees them).


def event(action: Action) -> EventFor:
    return changes.event(action)


def namespace_named(namespace: str) -> Namespace:
    moment = now()
    return Namespace(
        name=NamespaceName(namespace),
        uid=str(uuid.uuid4()),
        display_name=namespace,
        create_time=moment,
        update_time=moment,
        etag=new_etag(),
        create_actor="user:contract",
    )


def model_named(name: ModelName, **fields: Any) -> Model:
    moment = now()
    return Model(
        name=name,
        uid=str(uuid.uuid4()),
        display_name=name.model,
        create_time=moment,
        update_time=moment,
        etag=new_etag(),
        create_actor="user:contract",
        **fields,
    )


def new_version(model: Model, **fields: Any) -> Callable[[ModelVersionName], ModelVersion]:
    """A new version of `model` as the registry makes it, under the name its store gives it."""
    moment = now()
    uid = str(uuid.uuid4())

    def numbered(name: ModelVersionName) -> ModelVersion:
        return ModelVersion(
            name=name,
            uid=uid,
            model_uid=model.uid,
            create_actor="user:contract",
            create_time=moment,
            update_time=moment,
            etag=new_etag(),
            **fields,
        )

    return numbered


async def create_model(stores: Stores, namespace: str = "", **fields: Any) -> Model:
    name = ModelName(namespace or unique("ns"), unique("model"))
    return await stores.models.insert_model(model_named(name, **fields), "", event(Action.MODEL_CREATED))


async def create_version(stores: Stores, model: Model, request_key: str = "", **fields: Any) -> ModelVersion:
    return await stores.versions.insert_version(
        model.name, new_version(model, **fields), request_key, event(Action.MODEL_VERSION_CREATED)
    )
