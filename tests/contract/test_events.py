"""The event trail: one event per change (none for a refused one), numbered 1..n without gaps,
read by number, searched by scope."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from modelreg_api.errors import Aborted
from modelreg_api.names import ModelName, NamespaceName
from modelreg_metadata.audit.event_index import EventIndex
from modelreg_metadata.audit.events import Action, Event, EventScope
from modelreg_metadata.audit.mongo_log import DatabaseEventSearch, MongoEventLog
from modelreg_metadata.clock import new_etag

from tests.contract.conftest import Stores, create_model, create_version, event
from tests.support import unique


async def test_every_change_has_one_event_in_a_trail_without_gaps(stores: Stores) -> None:
    first = await create_model(stores)
    second = await create_model(stores)
    versions = await asyncio.gather(*(create_version(stores, m) for m in (first, second, first)))
    for version in versions:
        await stores.versions.update_version(
            version.name,
            lambda current, _: replace(current, description="x", etag=new_etag()),
            "",
            event(Action.MODEL_VERSION_UPDATED),
        )
    with pytest.raises(Aborted):  # refused: no event
        await stores.models.update_model(
            first.name, lambda m: replace(m, etag=new_etag()), "stale", event(Action.MODEL_UPDATED)
        )

    await stores.events.settle()
    changes = 2 + 3 + 3
    assert await stores.events.latest_sequence() == changes
    trail = await stores.events.read_after(0, 100, probe=True)
    assert [e.sequence for e in trail] == list(range(1, changes + 1))
    assert await stores.events.read_after(changes, 100, probe=True) == []
    assert await stores.events.get(3) == trail[2]
    assert await stores.events.get(changes + 1) is None
    assert len({e.id for e in trail}) == changes
    # Per resource, in commit order.
    for version in versions:
        assert [e.action for e in trail if e.resource == str(version.name)] == [
            "MODEL_VERSION_CREATED",
            "MODEL_VERSION_UPDATED",
        ]

    in_first = EventScope.of(model=first.name)
    assert [e.resource for e in await stores.events.search(in_first, 0, 100)] == [
        e.resource for e in trail if in_first.matches(e)
    ]
    assert len(await stores.events.search(in_first, 0, 100)) == 5
    page = await stores.events.search(in_first, 0, 2)
    rest = await stores.events.search(in_first, page[-1].sequence, 100)
    assert [e.sequence for e in page + rest] == [e.sequence for e in trail if in_first.matches(e)]
    created = EventScope.of(namespace=NamespaceName(second.name.namespace), actions=["MODEL_VERSION_CREATED"])
    assert [e.resource for e in await stores.events.search(created, 0, 100)] == [str(versions[1].name)]
    hidden = EventScope.of(model=first.name, visible_namespaces=frozenset({second.name.namespace}))
    assert await stores.events.search(hidden, 0, 100) == []

    moment = trail[-1].time
    history = EventScope(resource=str(versions[0].name), until=moment)
    assert [e.action for e in await stores.events.search(history, 0, 100)] == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_UPDATED",
    ]
    before = EventScope(
        resource=str(ModelName(first.name.namespace, first.name.model)), end_time=trail[0].time
    )
    assert await stores.events.search(before, 0, 100) == []


async def _varied_trail(stores: Stores) -> tuple[list[Event], list[EventScope]]:
    """A trail of changes in two namespaces, and scopes that select from it by every field
    (each served by another posting of the event index); asserts that a search made between
    changes does not hide the later ones."""
    namespace = unique("ns")
    first = await create_model(stores, namespace)
    await stores.events.settle()
    assert len(await stores.events.search(EventScope(namespace=namespace), 0, 100)) == 1
    second = await create_model(stores, namespace)
    other = await create_model(stores)
    version = await create_version(stores, first)
    for _ in range(2):
        await stores.versions.update_version(
            version.name,
            lambda current, _: replace(current, description="x", etag=new_etag()),
            "",
            event(Action.MODEL_VERSION_UPDATED),
        )
    await create_version(stores, other)
    await stores.events.settle()
    trail = await stores.events.read_after(0, 1000, probe=True)
    middle = trail[len(trail) // 2].time
    scopes = [
        EventScope(namespace=namespace),
        EventScope.of(model=second.name),
        EventScope(resource=str(version.name)),
        EventScope(resource=str(version.name), actions=("MODEL_VERSION_UPDATED",)),
        EventScope(actions=("MODEL_CREATED", "MODEL_VERSION_CREATED")),
        EventScope(actor="user:nobody"),
        EventScope(actor=trail[-1].actor, namespace=namespace),
        EventScope(visible_namespaces=tuple(sorted({namespace, other.name.namespace}))),
        EventScope(visible_namespaces=()),
        EventScope(namespace=namespace, visible_namespaces=(other.name.namespace,)),
        EventScope(start_time=middle),
        EventScope(namespace=namespace, end_time=middle),
        EventScope(resource=str(version.name), until=trail[-1].time),
        EventScope(),
    ]
    return trail, scopes


async def test_searches_find_every_later_change_and_agree_with_matches_on_every_scope(stores: Stores) -> None:
    """A search answers from the whole trail at the time it is asked: changes made after an
    earlier search (which may have loaded an index of the trail) are found, and every scope
    finds exactly the events its `matches` admits, in sequence order, page by page."""
    trail, scopes = await _varied_trail(stores)
    version = scopes[2].resource  # the version updated twice
    for scope in scopes:
        expected = [e.sequence for e in trail if scope.matches(e)]
        assert [e.sequence for e in await stores.events.search(scope, 0, 1000)] == expected, scope
        paged: list[int] = []
        while True:
            page = await stores.events.search(scope, paged[-1] if paged else 0, 2)
            paged += [e.sequence for e in page]
            if len(page) < 2:
                break
        assert paged == expected, scope
    found = await stores.events.search(EventScope(resource=version), 0, 10)
    assert found == [e for e in trail if e.resource == version]  # whole events, before/after


async def test_newest_first_searches_find_the_same_events_in_reverse_within_both_bounds(
    stores: Stores,
) -> None:
    """Newest first, every scope finds exactly what it finds oldest first, reversed; paging down
    with `before_sequence` (as a ListEvents page token does) goes through all of it, and
    `after_sequence` still means "only larger sequence numbers"."""
    trail, scopes = await _varied_trail(stores)
    floor = trail[len(trail) // 3].sequence
    for scope in scopes:
        expected = [e.sequence for e in trail if scope.matches(e)][::-1]
        newest = await stores.events.search(scope, 0, 1000, newest_first=True)
        assert [e.sequence for e in newest] == expected, scope
        paged: list[int] = []
        while True:
            page = await stores.events.search(
                scope, 0, 2, before_sequence=paged[-1] if paged else 0, newest_first=True
            )
            paged += [e.sequence for e in page]
            if len(page) < 2:
                break
        assert paged == expected, scope
        above = await stores.events.search(scope, floor, 1000, newest_first=True)
        assert [e.sequence for e in above] == [n for n in expected if n > floor], scope
        window = await stores.events.search(scope, floor, 1000, before_sequence=floor + 4, newest_first=True)
        assert [e.sequence for e in window] == [n for n in expected if floor < n < floor + 4], scope
    latest = await stores.events.search(EventScope(), 0, 1, newest_first=True)
    assert latest == [trail[-1]]  # the whole event, before/after included


async def test_only_a_single_writing_process_searches_an_index_of_the_trail(stores: Stores) -> None:
    """Several processes (MongoDB's semantics) query the database and its indexes: only the one
    writing process of a FerretDB deployment, with its replica, can follow every event."""
    if not isinstance(stores.events, MongoEventLog):
        pytest.skip("the in-memory trail has no database to query")
    indexed = isinstance(stores.events.searcher, EventIndex)
    assert indexed == (stores.kind == "ferretdb-replica")
    assert indexed or isinstance(stores.events.searcher, DatabaseEventSearch)
