"""The relay of the one writing process (FerretDB) defers its pulls: restarts stay exact.

With one writing process the relay leaves placed entries in their documents until it is idle
(services/metadata/modelreg_metadata/audit/outbox.py). These tests kill the process while many
placed entries are still there (`crash-before-pull`), alone and mixed with an entry that was never
placed, and stop it gracefully with entries still there, then check that the restarted process
neither repeats nor loses an event, keeps the sequence gap-free, empties the outboxes, and goes
on numbering events and versions where the crashed life stopped (the version counters are written
lazily as well).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.integration.isolated import CRASHED, Isolated
from tests.support import as_actor, events_when, list_all_events

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")
VERSIONS = 120  # more than FerretDB answers in one update command (99): pulls go in slices


@asynccontextmanager
async def database(isolated: Isolated) -> AsyncIterator[Any]:
    if not await isolated.on_ferretdb():
        pytest.skip("pulls are deferred only by the one writing process of a FerretDB deployment")
    async with isolated.database() as db:
        yield db


async def outbox_entries(db: Any) -> int:
    count = 0
    for name in ("namespaces", "models", "model_versions"):
        async for doc in db[name].find({"outbox.id": {"$exists": True}}, {"outbox": True}):
            count += len(doc["outbox"])
    return count


async def create_versions(metadata: MetadataStub, model: str, count: int) -> None:
    await asyncio.gather(
        *(
            metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model), metadata=ALICE)
            for _ in range(count)
        )
    )


async def model_with_versions(metadata: MetadataStub, count: int) -> model_pb2.Model:
    """The model `relay/m`, created with `count` versions."""
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent="namespaces/relay", model_id="m"), metadata=ALICE
    )
    await create_versions(metadata, model.name, count)
    return model


async def check_trail(metadata: MetadataStub, model: str, versions: int) -> int:
    """Every change of the model exactly once, in a gap-free trail; returns its last sequence."""
    trail = await list_all_events(metadata)
    assert [e.sequence for e in trail] == list(range(1, len(trail) + 1))  # no gap, no duplicate
    assert len({e.id for e in trail}) == len(trail)
    created = sorted(e.resource for e in trail if e.action == "MODEL_VERSION_CREATED")
    assert created == sorted(f"{model}/versions/{n}" for n in range(1, versions + 1))
    assert [e.resource for e in trail if e.action == "MODEL_CREATED"] == [model]
    return trail[-1].sequence


async def wait_for_empty_outboxes(db: Any) -> None:
    for _ in range(100):
        if await outbox_entries(db) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{await outbox_entries(db)} entries stay in outboxes")


async def test_a_crash_with_placed_entries_not_pulled_leaves_every_event_once(isolated: Isolated) -> None:
    isolated.start("crash-before-pull")
    async with database(isolated) as db:
        before = await db["events"].count_documents({})  # the start's own (the bootstrap admin)
        async with isolated.stub() as metadata:
            model = await model_with_versions(metadata, VERSIONS)
        # Only creations: no document is written twice, so the first pull is the idle one, once
        # every event is placed.
        assert isolated.wait_crashed() == CRASHED
        # The namespace, the model and every version: placed, not pulled.
        assert await db["events"].count_documents({}) == before + VERSIONS + 2
        assert await outbox_entries(db) == VERSIONS + 2

        isolated.start()
        async with isolated.stub() as metadata:
            last = await check_trail(metadata, model.name, VERSIONS)
            assert await outbox_entries(db) == 0  # recognised as placed at start-up and pulled
            # Events and versions go on where the crashed life stopped (its counter was not written).
            # As the admin: a first call as alice would issue her token here, two events more.
            version = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
            assert version.name == f"{model.name}/versions/{VERSIONS + 1}"
            (event,) = await events_when(metadata, 1, resource=version.name)
            assert event.sequence == last + 1
            listed = await metadata.ListModels(md.ListModelsRequest(parent="namespaces/relay"))
            assert [m.latest_version_number for m in listed.models] == [VERSIONS + 1]
        isolated.stop()


async def test_a_crash_with_placed_and_unplaced_entries_places_only_the_unplaced(isolated: Isolated) -> None:
    isolated.start()
    async with isolated.stub() as metadata:
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent="namespaces/relay", model_id="m"), metadata=ALICE
        )
    isolated.stop()

    isolated.start("crash-after-commit@MODEL_VERSION_SEALED")
    async with database(isolated) as db:
        async with isolated.stub() as metadata:
            await create_versions(metadata, model.name, VERSIONS)
            await events_when(metadata, VERSIONS + 2, namespace="namespaces/relay")  # placed, not yet pulled
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await metadata.SealModelVersion(
                    md.SealModelVersionRequest(name=f"{model.name}/versions/7"), metadata=ALICE
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert isolated.wait_crashed() == CRASHED
        assert await outbox_entries(db) >= 1  # at least the seal, which was never placed

        isolated.start()
        async with isolated.stub() as metadata:
            last = await check_trail(metadata, model.name, VERSIONS)
            sealed = await list_all_events(metadata, actions=["MODEL_VERSION_SEALED"])
            assert [(e.resource, e.sequence) for e in sealed] == [(f"{model.name}/versions/7", last)]
            await wait_for_empty_outboxes(db)
        isolated.stop()


async def test_a_graceful_stop_pulls_what_is_placed_and_records_how_far(isolated: Isolated) -> None:
    isolated.start()
    async with database(isolated) as db:
        async with isolated.stub() as metadata:
            model = await model_with_versions(metadata, VERSIONS)
            await events_when(metadata, VERSIONS + 2, namespace="namespaces/relay")
            # The trail also holds the start's own events (the bootstrap admin, the test's tokens).
            trail_end = (await list_all_events(metadata))[-1].sequence
        isolated.stop()  # at once: the relay has most likely not been idle yet
        assert await outbox_entries(db) == 0
        recorded = await db["event_relay"].find_one({"_id": "pulled_through"})
        assert recorded is not None
        assert recorded["sequence"] == trail_end
        stored = await db["models"].find_one({"_id": "relay/m"})
        assert stored is not None
        assert stored["latest_version_number"] == VERSIONS  # the counter was written at the stop

        isolated.start()
        async with isolated.stub() as metadata:
            await check_trail(metadata, model.name, VERSIONS)
        isolated.stop()


async def test_a_lagging_version_counter_is_caught_up_at_the_first_read(isolated: Isolated) -> None:
    # With the replica the stored counter is written lazily, so after a crash it may lag behind
    # the versions; a lagging counter must cost a few reads, never a number twice or a gap.
    isolated.start()
    async with database(isolated) as db:
        async with isolated.stub() as metadata:
            model = await model_with_versions(metadata, 37)
        isolated.stop()
        await db["models"].update_one({"_id": "relay/m"}, {"$set": {"latest_version_number": 3}})

        isolated.start()
        async with isolated.stub() as metadata:
            await create_versions(metadata, model.name, 5)
            got = await metadata.GetModel(md.GetModelRequest(name=model.name))
            assert got.latest_version_number == 42
            numbers = [
                v.name.rsplit("/", 1)[1]
                for v in (
                    await metadata.ListModelVersions(
                        md.ListModelVersionsRequest(parent=model.name, page_size=100)
                    )
                ).model_versions
            ]
            assert numbers == [str(n) for n in range(1, 43)]
        isolated.stop()
        stored = await db["models"].find_one({"_id": "relay/m"})
        assert stored is not None
        assert stored["latest_version_number"] == 42
