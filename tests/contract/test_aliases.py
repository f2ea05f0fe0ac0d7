"""Aliases and their protections live in their model: every change is one write of the model,
compared by etag, and a version read through an alias or by name lists the aliases it serves."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from modelreg_api.errors import Aborted, FailedPrecondition, NotFound
from modelreg_api.names import AliasName
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import MAX_ALIASES_PER_MODEL, Alias, AliasProtection, Model

from tests.contract.conftest import Stores, create_model, create_version, event


def pointing(name: AliasName, number: int, protection: AliasProtection | None = None) -> Alias:
    return Alias(name, number, now(), "user:contract", new_etag(), protection)


async def set_alias(stores: Stores, name: AliasName, number: int, etag: str = "") -> Alias:
    async def change(current: Alias | None, protection: AliasProtection | None) -> Alias:
        return pointing(name, number, protection)

    _, after = await stores.models.change_alias(name, change, etag, changes.event(changes.alias_action))
    assert after is not None
    return after


async def test_an_alias_points_within_its_model_and_moves_by_etag(stores: Stores) -> None:
    model = await create_model(stores)
    one = await create_version(stores, model)
    two = await create_version(stores, model)
    name = model.name.alias("production")
    with pytest.raises(NotFound):
        await stores.models.get_alias(name)
    with pytest.raises(NotFound):
        await set_alias(stores, name, 1, etag="an-etag")  # an etag for an alias that does not exist

    created = await set_alias(stores, name, one.number)
    assert await stores.models.get_alias(name) == created
    assert (await stores.versions.get_version(one.name)).aliases == ["production"]
    assert (await stores.versions.get_version_by_alias(name)).uid == one.uid
    with pytest.raises(Aborted):
        await set_alias(stores, name, two.number, etag="stale")
    moved = await set_alias(stores, name, two.number, etag=created.etag)
    assert (await stores.versions.get_version_by_alias(name)).aliases == ["production"]
    assert (await stores.versions.get_version(one.name)).aliases == []
    await set_alias(stores, model.name.alias("candidate"), two.number)
    assert (await stores.versions.get_version(two.name)).aliases == ["candidate", "production"]
    assert [a.name.alias for a in await stores.models.list_aliases(model.name)] == ["candidate", "production"]

    async def delete(current: Alias | None, protection: AliasProtection | None) -> None:
        assert current == moved

    before, after = await stores.models.change_alias(
        name, delete, moved.etag, changes.event(changes.alias_action)
    )
    assert (before, after) == (moved, None)
    with pytest.raises(NotFound):
        await stores.versions.get_version_by_alias(name)
    assert await stores.events_of(str(name)) == ["ALIAS_CREATED", "ALIAS_MOVED", "ALIAS_DELETED"]
    # Alias changes are writes of the model document, not model changes.
    assert await stores.events_of(str(model.name)) == ["MODEL_CREATED"]


async def test_concurrent_moves_with_one_etag_let_exactly_one_win(stores: Stores) -> None:
    model = await create_model(stores)
    for _ in range(3):
        await create_version(stores, model)
    name = model.name.alias("production")
    first = await set_alias(stores, name, 1)

    async def move(number: int) -> int:
        try:
            await set_alias(stores, name, number, etag=first.etag)
        except Aborted:
            return 0
        return number

    winners = [n for n in await asyncio.gather(move(2), move(3), move(2), move(3)) if n]
    assert len(winners) == 1
    assert (await stores.models.get_alias(name)).version_number == winners[0]


async def test_an_alias_to_a_deleted_version_reads_as_not_found(stores: Stores) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model)
    name = model.name.alias("production")
    await set_alias(stores, name, version.number)
    await stores.versions.update_version(
        version.name,
        lambda current, _: replace(current, deleted=True, etag=new_etag()),
        "",
        event(Action.MODEL_VERSION_DELETED),
    )
    with pytest.raises(NotFound) as caught:
        await stores.versions.get_version_by_alias(name)
    assert "which is deleted" in caught.value.message


async def test_a_model_holds_at_most_its_limit_of_aliases(stores: Stores) -> None:
    model = await create_model(stores)
    await create_version(stores, model)
    for i in range(MAX_ALIASES_PER_MODEL):
        await set_alias(stores, model.name.alias(f"a{i}"), 1)
    with pytest.raises(FailedPrecondition) as caught:
        await set_alias(stores, model.name.alias("one-too-many"), 1)
    assert caught.value.reason == "TOO_MANY_ALIASES"
    assert len(await stores.models.list_aliases(model.name)) == MAX_ALIASES_PER_MODEL


async def test_protections_live_with_the_model_and_are_given_to_alias_changes(stores: Stores) -> None:
    model: Model = await create_model(stores)
    await create_version(stores, model)
    name = model.name.alias("production")
    protection = AliasProtection(name, metric_gate="metrics.acc >= 0.9", update_actor="user:contract")
    assert await stores.models.get_protection(name) is None

    seen: list[Alias | None] = []

    def protect(current: AliasProtection | None, alias: Alias | None) -> AliasProtection:
        seen.append(alias)
        return protection

    before, after = await stores.models.change_protection(name, protect, event(Action.ALIAS_PROTECTED))
    assert (before, after, seen) == (None, protection, [None])  # an alias may be protected before it exists
    assert await stores.models.get_protection(name) == protection

    created = await set_alias(stores, name, 1)
    assert created.protection == protection
    assert (await stores.models.get_alias(name)).protection == protection
    await stores.models.change_protection(name, protect, event(Action.ALIAS_PROTECTED))
    assert seen[-1] == created

    def unprotect(current: AliasProtection | None, alias: Alias | None) -> None:
        assert current == protection

    await stores.models.change_protection(name, unprotect, event(Action.ALIAS_UNPROTECTED))
    assert await stores.models.get_protection(name) is None
    assert (await stores.models.get_alias(name)).protection is None
    assert await stores.events_of(str(name)) == [
        "ALIAS_PROTECTED",
        "ALIAS_CREATED",
        "ALIAS_PROTECTED",
        "ALIAS_UNPROTECTED",
    ]
