"""The rules of the namespace and model stores: unique names, idempotent creates, compare-and-set
on etags, soft delete, and an event with every change."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from modelreg_api.errors import Aborted, AlreadyExists, NotFound
from modelreg_api.names import ModelName, NamespaceName
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag
from modelreg_metadata.domain import Model, Namespace

from tests.contract.conftest import Stores, create_model, event, model_named, namespace_named
from tests.support import unique


async def test_a_namespace_name_is_taken_once_and_a_retried_create_gets_the_first(stores: Stores) -> None:
    namespace = namespace_named(unique("ns"))
    made = await stores.namespaces.insert_namespace(namespace, "key-1", event(Action.NAMESPACE_CREATED))
    assert made == namespace
    assert await stores.namespaces.get_namespace(namespace.name) == namespace

    again = namespace_named(namespace.name.namespace)
    retried = await stores.namespaces.insert_namespace(again, "key-1", event(Action.NAMESPACE_CREATED))
    assert retried.uid == namespace.uid
    for key in ("key-2", ""):
        with pytest.raises(AlreadyExists):
            await stores.namespaces.insert_namespace(again, key, event(Action.NAMESPACE_CREATED))
    # ensure_namespace leaves an existing namespace as it is.
    await stores.namespaces.ensure_namespace(again, event(Action.NAMESPACE_CREATED))
    assert (await stores.namespaces.get_namespace(namespace.name)).uid == namespace.uid
    assert await stores.events_of(str(namespace.name)) == ["NAMESPACE_CREATED"]

    with pytest.raises(NotFound):
        await stores.namespaces.get_namespace(NamespaceName(unique("ns")))


async def test_ensure_namespace_creates_it_once_under_concurrency(stores: Stores) -> None:
    name = unique("ns")
    await asyncio.gather(
        *(
            stores.namespaces.ensure_namespace(namespace_named(name), event(Action.NAMESPACE_CREATED))
            for _ in range(5)
        )
    )
    assert await stores.events_of(f"namespaces/{name}") == ["NAMESPACE_CREATED"]


async def test_namespace_updates_compare_etags_and_lists_page_by_key(stores: Stores) -> None:
    namespace = namespace_named(unique("ns"))
    await stores.namespaces.insert_namespace(namespace, "", event(Action.NAMESPACE_CREATED))

    def described(current: Namespace) -> Namespace:
        assert current == namespace
        return replace(current, description="team", etag=new_etag())

    with pytest.raises(Aborted):
        await stores.namespaces.update_namespace(
            namespace.name, described, "stale", event(Action.NAMESPACE_UPDATED)
        )
    before, after = await stores.namespaces.update_namespace(
        namespace.name, described, namespace.etag, event(Action.NAMESPACE_UPDATED)
    )
    assert before == namespace
    assert await stores.namespaces.get_namespace(namespace.name) == after
    assert after.description == "team"
    with pytest.raises(NotFound):
        await stores.namespaces.update_namespace(
            NamespaceName(unique("ns")), described, "", event(Action.NAMESPACE_UPDATED)
        )
    assert await stores.events_of(str(namespace.name)) == ["NAMESPACE_CREATED", "NAMESPACE_UPDATED"]

    prefix = unique("page")
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for name in names:
        await stores.namespaces.insert_namespace(namespace_named(name), "", event(Action.NAMESPACE_CREATED))
    seen: list[str] = []
    after_key: str | None = prefix
    while page := await stores.namespaces.list_namespaces(2, after_key):
        seen += [n.name.namespace for n in page if n.name.namespace.startswith(prefix)]
        after_key = page[-1].name.namespace
    assert seen == names


async def test_a_model_name_is_taken_once_even_when_deleted(stores: Stores) -> None:
    name = ModelName(unique("ns"), unique("model"))
    model = model_named(name, labels={"task": "nlp"})
    assert await stores.models.insert_model(model, "key-1", event(Action.MODEL_CREATED)) == model
    assert await stores.models.get_model(name) == model
    retried = await stores.models.insert_model(model_named(name), "key-1", event(Action.MODEL_CREATED))
    assert retried.uid == model.uid
    with pytest.raises(AlreadyExists) as caught:
        await stores.models.insert_model(model_named(name), "key-2", event(Action.MODEL_CREATED))
    assert caught.value.reason != "MODEL_DELETED"

    def delete(current: Model) -> Model:
        return replace(current, deleted=True, etag=new_etag())

    await stores.models.update_model(name, delete, model.etag, event(Action.MODEL_DELETED))
    with pytest.raises(NotFound):
        await stores.models.get_model(name)
    assert (await stores.models.get_model(name, include_deleted=True)).deleted
    with pytest.raises(AlreadyExists) as caught:
        await stores.models.insert_model(model_named(name), "", event(Action.MODEL_CREATED))
    assert caught.value.reason == "MODEL_DELETED"
    # An update of a deleted model finds it only when asked to.
    with pytest.raises(NotFound):
        await stores.models.update_model(name, delete, "", event(Action.MODEL_UPDATED))
    _, restored = await stores.models.update_model(
        name,
        lambda current: replace(current, deleted=False, etag=new_etag()),
        "",
        event(Action.MODEL_UNDELETED),
        include_deleted=True,
    )
    assert await stores.models.get_model(name) == restored
    assert await stores.events_of(str(name)) == ["MODEL_CREATED", "MODEL_DELETED", "MODEL_UNDELETED"]


async def test_concurrent_model_updates_with_one_etag_let_exactly_one_win(stores: Stores) -> None:
    model = await create_model(stores)

    async def update(i: int) -> str:
        try:
            await stores.models.update_model(
                model.name,
                lambda current: replace(current, description=f"writer {i}", etag=new_etag()),
                model.etag,
                event(Action.MODEL_UPDATED),
            )
        except Aborted:
            return "aborted"
        return "won"

    outcomes = await asyncio.gather(*(update(i) for i in range(8)))
    assert sorted(outcomes) == ["aborted"] * 7 + ["won"]
    assert await stores.events_of(str(model.name)) == ["MODEL_CREATED", "MODEL_UPDATED"]
