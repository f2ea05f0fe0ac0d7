"""Rules of the registry's use cases, on the in-memory stores (modelreg_metadata.memory): the
contract suite (tests/contract) holds them to the MongoDB stores' rules, so these run in
milliseconds and still say what the service does."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from modelreg_api.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from modelreg_api.names import ModelName, NamespaceName
from modelreg_common.context import bind_call
from modelreg_common.identity.caller import Caller
from modelreg_metadata.audit.events import EventScope
from modelreg_metadata.domain import Model, ModelFile, Namespace, ReviewState, VersionDraft
from modelreg_metadata.memory import MemoryStores
from modelreg_metadata.registry import Registry

ALICE = Caller("user:alice@example.com", authentication="test")
BOB = Caller("user:bob@example.com", authentication="test")


@pytest.fixture
def memory() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
def registry(memory: MemoryStores) -> Registry:
    return Registry(memory.namespaces, memory.models, memory.versions, memory.requests)


def acting_as(caller: Caller) -> None:
    """The caller of what the test does next (bound in the test's own task: it ends with it)."""
    bind_call(uuid.uuid4().hex, caller)


def draft(parent: ModelName, **fields: Any) -> VersionDraft:
    return VersionDraft(**fields)


async def new_model(registry: Registry, namespace: str = "team-a", model_id: str = "churn") -> Model:
    return await registry.models.create_model(
        NamespaceName(namespace), model_id, Model(name=ModelName(namespace, model_id), uid="")
    )


async def test_a_model_brings_its_namespace_and_creates_are_idempotent_on_their_request_id(
    registry: Registry, memory: MemoryStores
) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    assert (await registry.namespaces.get_namespace(NamespaceName("team-a"))).create_actor == ALICE.principal
    with pytest.raises(AlreadyExists):
        await new_model(registry)
    first = await registry.versions.create_version(model.name, draft(model.name), "request-1")
    again = await registry.versions.create_version(model.name, draft(model.name), "request-1")
    other = await registry.versions.create_version(model.name, draft(model.name))
    assert (first.number, again.uid, other.number) == (1, first.uid, 2)
    assert first.model_uid == model.uid
    assert (await registry.models.get_model(model.name)).latest_version_number == 2
    events = await memory.events.search(EventScope(), 0, 100)
    assert [e.action for e in events] == [
        "NAMESPACE_CREATED",
        "MODEL_CREATED",
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_CREATED",
    ]
    assert {e.actor for e in events} == {ALICE.principal}


async def test_a_sealed_version_keeps_its_params_and_manifest(registry: Registry) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    version = await registry.versions.create_version(model.name, draft(model.name, params={"lr": 0.1}))
    file = ModelFile("model.bin", 3, "ab" * 32)
    version = await registry.versions.add_files(version.name, [file])
    with pytest.raises(Aborted):
        await registry.versions.seal_version(version.name, "stale")
    sealed = await registry.versions.seal_version(version.name, version.etag)
    with pytest.raises(FailedPrecondition) as caught:
        await registry.versions.update_version(replace(sealed, params={"lr": 1.0}), ["params"], ["params"])
    assert caught.value.reason == "VERSION_SEALED"
    with pytest.raises(FailedPrecondition) as caught:
        await registry.versions.add_files(version.name, [replace(file, path="other.bin")])
    assert caught.value.reason == "VERSION_SEALED"
    described = await registry.versions.update_version(
        replace(sealed, description="evaluated"), ["description"], ["description"]
    )
    assert (described.description, described.params) == ("evaluated", {"lr": 0.1})


async def test_the_creator_of_a_version_cannot_approve_it_unless_the_namespace_allows(
    registry: Registry,
) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    version = await registry.versions.create_version(model.name, draft(model.name))
    version = await registry.versions.seal_version(version.name, "")
    await registry.reviews.submit_for_review(version.name, "please", "")
    with pytest.raises(PermissionDenied) as caught:
        await registry.reviews.approve_version(version.name, "", "")
    assert caught.value.reason == "SELF_APPROVAL_NOT_ALLOWED"

    namespace = await registry.namespaces.get_namespace(NamespaceName("team-a"))
    await registry.namespaces.update_namespace(
        replace(namespace, allow_self_approval=True, etag=""), ["allow_self_approval"], []
    )
    approved = await registry.reviews.approve_version(version.name, "fine", "")
    assert approved.review_state is ReviewState.APPROVED
    assert [step.actor for step in approved.reviews] == [ALICE.principal] * 2


async def test_another_actor_approves(registry: Registry) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    version = await registry.versions.create_version(model.name, draft(model.name))
    await registry.versions.seal_version(version.name, "")
    await registry.reviews.submit_for_review(version.name, "", "")
    acting_as(BOB)
    approved = await registry.reviews.approve_version(version.name, "", "")
    assert approved.reviews[-1].actor == BOB.principal


async def test_an_aliased_version_cannot_be_deleted_and_an_archived_one_cannot_be_aliased(
    registry: Registry,
) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    one = await registry.versions.create_version(model.name, draft(model.name))
    two = await registry.versions.create_version(model.name, draft(model.name))
    alias = model.name.alias("production")
    await registry.aliases.set_alias(alias, one.name, "")
    with pytest.raises(FailedPrecondition) as caught:
        await registry.versions.delete_version(one.name, "")
    assert caught.value.reason == "VERSION_HAS_ALIASES"
    await registry.versions.seal_version(two.name, "")
    await registry.versions.archive_version(two.name, "")
    with pytest.raises(FailedPrecondition) as caught:
        await registry.aliases.set_alias(alias, two.name, "")
    assert caught.value.reason == "VERSION_ARCHIVED"
    assert (await registry.versions.get_version_by_alias(alias)).uid == one.uid


async def test_a_purged_version_is_gone_and_its_number_stays_taken(registry: Registry) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    version = await registry.versions.create_version(model.name, draft(model.name))
    with pytest.raises(FailedPrecondition) as caught:
        await registry.versions.purge_version(version.name, "")
    assert caught.value.reason == "NOT_DELETED"
    await registry.versions.delete_version(version.name, "")
    await registry.versions.purge_version(version.name, "")
    with pytest.raises(NotFound) as gone:
        await registry.versions.undelete_version(version.name)
    assert gone.value.reason == "VERSION_PURGED"
    assert (await registry.versions.create_version(model.name, draft(model.name))).number == 2


async def test_searches_filter_and_page(registry: Registry) -> None:
    acting_as(ALICE)
    model = await new_model(registry)
    for i in range(5):
        await registry.versions.create_version(model.name, draft(model.name, metrics={"acc": i / 10}))
    seen: list[int] = []
    token = ""
    while True:
        page, token = await registry.versions.list_versions(
            model.name,
            page_size=2,
            page_token=token,
            filter_text="metrics.acc >= 0.1",
            order_by="metrics.acc desc",
        )
        seen += [v.number for v in page]
        if not token:
            break
    assert seen == [5, 4, 3, 2]
    namespaces, _ = await registry.namespaces.list_namespaces(0, "")
    assert [n.name.namespace for n in namespaces] == ["team-a"]
    assert isinstance(namespaces[0], Namespace)
