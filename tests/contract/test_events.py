"""The event trail: one event per change (none for a refused one), numbered 1..n without gaps,
read by number, searched by scope."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from modelreg_api.errors import Aborted
from modelreg_api.names import ModelName, NamespaceName
from modelreg_metadata.audit.events import Action, EventScope
from modelreg_metadata.clock import new_etag

from tests.contract.conftest import Stores, create_model, create_version, event


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
