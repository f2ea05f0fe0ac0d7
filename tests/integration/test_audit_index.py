"""ListEvents and GetStateAtTime answer from the event index on FerretDB (audit/event_index.py):
every filter combination gives what a full scan of the `events` collection gives, on the first
search (the index loads), after more writes (the index follows them), and after a restart (a new
process rebuilds it).

The process is a test's own (tests/integration/isolated.py), so the test can read its database
directly and restart it.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.integration.isolated import Isolated
from tests.support import as_actor, error_info, list_all_events

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")
BOB = as_actor("user:bob@example.com")


async def _write(metadata: MetadataStub, namespaces: list[str], round_: int) -> None:
    """Models, versions, updates and alias moves by two actors in each namespace."""
    for ns in namespaces:
        for i, actor in enumerate((ALICE, BOB)):
            model = f"namespaces/{ns}/models/m{i}"
            if round_ == 0:
                await metadata.CreateModel(
                    md.CreateModelRequest(parent=f"namespaces/{ns}", model_id=f"m{i}"), metadata=actor
                )
            for _ in range(2):
                version = await metadata.CreateModelVersion(
                    md.CreateModelVersionRequest(parent=model), metadata=actor
                )
                await metadata.UpdateModelVersion(
                    md.UpdateModelVersionRequest(
                        model_version=model_pb2.ModelVersion(name=version.name, description=f"r{round_}"),
                        update_mask=field_mask_pb2.FieldMask(paths=["description"]),
                    ),
                    metadata=BOB,
                )
                await metadata.SetAlias(
                    md.SetAliasRequest(name=f"{model}/aliases/prod", model_version=version.name),
                    metadata=actor,
                )


async def _scan(isolated: Isolated) -> list[dict[str, Any]]:
    """The whole trail, read from the database (the reference every answer is compared with)."""
    async with isolated.database() as db:
        return [doc async for doc in db["events"].find({}, {"before": False, "after": False}).sort("seq")]


def _stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _filters(trail: list[dict[str, Any]], ns: str) -> list[dict[str, Any]]:
    """Every combination of the ListEvents filters, over values the trail holds."""
    model = f"namespaces/{ns}/models/m1"
    version = f"{model}/versions/1"
    times = [doc["time"] for doc in trail]
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    scopes: list[dict[str, Any]] = [{}, {"namespace": f"namespaces/{ns}"}, {"model": model}]
    scopes.append({"namespace": f"namespaces/{ns}", "model": model})
    actions: list[dict[str, Any]] = [
        {},
        {"actions": ["MODEL_VERSION_CREATED"]},
        {"actions": ["ALIAS_CREATED", "ALIAS_MOVED"]},
    ]
    actors: list[dict[str, Any]] = [{}, {"actor": "user:bob@example.com"}]
    resources: list[dict[str, Any]] = [{}, {"resource": version}]
    windows: list[dict[str, Any]] = [
        {},
        {"start_time": _stamp(start)},
        {"start_time": _stamp(start), "end_time": _stamp(end)},
    ]
    afters: list[dict[str, Any]] = [{}, {"after_sequence": trail[len(trail) // 2]["seq"]}]
    return [
        {k: v for part in parts for k, v in part.items()}
        for parts in itertools.product(scopes, actions, actors, resources, windows, afters)
    ]


def _expected(trail: list[dict[str, Any]], filters: dict[str, Any]) -> list[int]:
    """The sequence numbers a full scan finds for `filters` (the API's documented semantics)."""
    found = []
    for doc in trail:
        resource: str = doc["resource"]
        parts = resource.split("/")
        namespace = f"namespaces/{parts[1]}" if parts[0] == "namespaces" else ""
        model = "/".join(parts[:4]) if len(parts) > 3 and parts[2] == "models" else ""
        if (
            filters.get("namespace", namespace) == namespace
            and filters.get("model", model) == model
            and filters.get("resource", resource) == resource
            and doc["action"] in filters.get("actions", [doc["action"]])
            and filters.get("actor", doc["actor"]) == doc["actor"]
            and ("start_time" not in filters or doc["time"] >= filters["start_time"].ToDatetime())
            and ("end_time" not in filters or doc["time"] < filters["end_time"].ToDatetime())
            and doc["seq"] > filters.get("after_sequence", 0)
        ):
            found.append(doc["seq"])
    return found


async def _answers_as_a_full_scan(isolated: Isolated, metadata: MetadataStub, ns: str) -> None:
    # ListEvents waits for the events of acknowledged changes; the direct read below does not.
    await metadata.ListEvents(md.ListEventsRequest(page_size=1))
    trail = await _scan(isolated)
    assert [doc["seq"] for doc in trail] == list(range(1, len(trail) + 1))
    by_sequence = {doc["seq"]: doc for doc in trail}
    combinations = _filters(trail, ns)
    nonempty = 0
    for filters in combinations:
        listed = await list_all_events(metadata, **filters)
        assert [e.sequence for e in listed] == _expected(trail, filters), filters
        newest = await list_all_events(metadata, order_by="sequence desc", **filters)
        assert [e.sequence for e in newest] == _expected(trail, filters)[::-1], filters
        for event in listed:
            doc = by_sequence[event.sequence]
            stored = (doc["event_id"], doc["action"], doc["resource"])
            assert (event.id, event.action, event.resource) == stored
        nonempty += bool(listed)
    assert nonempty > len(combinations) // 4  # the filters select something, not only nothing

    # Paging: small pages walk the same events, whatever the filter, in either order.
    paged_filters: list[dict[str, Any]] = [
        {},
        {"model": f"namespaces/{ns}/models/m1"},
        {"actions": ["ALIAS_MOVED"]},
    ]
    for filters, order in itertools.product(paged_filters, ("", "sequence desc")):
        paged = []
        token = ""
        while True:
            page = await metadata.ListEvents(
                md.ListEventsRequest(page_size=3, page_token=token, order_by=order, **filters)
            )
            assert len(page.events) <= 3
            paged += [e.sequence for e in page.events]
            token = page.next_page_token
            if not token:
                break
        expected = _expected(trail, filters)
        assert paged == (expected[::-1] if order else expected), (filters, order)


async def _states(metadata: MetadataStub, ns: str) -> list[tuple[str, int, str]]:
    """GetStateAtTime at every event of an alias and a version: (kind, number, description)."""
    states = []
    for name in (f"namespaces/{ns}/models/m0/aliases/prod", f"namespaces/{ns}/models/m0/versions/1"):
        for event in await list_all_events(metadata, resource=name):
            state = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=name, time=event.time))
            if state.WhichOneof("state") == "alias":
                states.append(("alias", state.alias.version_number, ""))
            else:
                states.append(("version", state.model_version.number, state.model_version.description))
            assert state.as_of.sequence == event.sequence
    return states


async def test_list_events_over_the_index_answers_as_a_full_scan_after_writes_and_restarts(
    isolated: Isolated,
) -> None:
    isolated.start()
    if not await isolated.on_ferretdb():
        pytest.skip("the event index serves FerretDB deployments; MongoDB answers from its indexes")
    namespaces = ["audit-a", "audit-b"]
    async with isolated.stub() as metadata:
        await _write(metadata, namespaces, 0)
        await _answers_as_a_full_scan(isolated, metadata, "audit-a")  # the first search loads it
        await _write(metadata, namespaces, 1)  # events after the load
        await _answers_as_a_full_scan(isolated, metadata, "audit-a")
        states = await _states(metadata, "audit-a")
    assert ("alias", 4, "") in states
    assert ("version", 1, "r1") not in states  # version 1 was described in round 0 only
    assert ("version", 1, "r0") in states

    isolated.stop()
    isolated.start()  # a new process: the index is rebuilt from the database
    async with isolated.stub() as metadata:
        assert await _states(metadata, "audit-a") == states
        await _answers_as_a_full_scan(isolated, metadata, "audit-b")
        await _write(metadata, ["audit-b"], 2)
        await _answers_as_a_full_scan(isolated, metadata, "audit-b")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.GetStateAtTime(
                md.GetStateAtTimeRequest(
                    name="namespaces/audit-a/models/m0/aliases/prod", time=_stamp(datetime(2000, 1, 1))
                )
            )
        assert error_info(caught.value)[0] == "NOT_FOUND_AT_TIME"
    isolated.stop()
