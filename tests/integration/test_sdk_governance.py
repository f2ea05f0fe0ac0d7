"""The SDK's search, compare, review, protected aliases and events, against the real services."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from modelreg import AsyncClient, Client, ClientSettings, RetryPolicy, StateAtTime
from modelreg import errors as sdk_errors
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack
from modelregistry.v1 import event_pb2, model_pb2

from tests.integration.credentials import ready_credential_for
from tests.integration.isolated import Isolated
from tests.support import unique

pytestmark = pytest.mark.integration

ALICE = "user:alice@example.com"
BOB = "user:bob@example.com"


def connect(stack: LocalStack, tmp_path: Path, principal: str) -> Client:
    return Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, principal),
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def alice(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    with connect(stack, tmp_path, ALICE) as registry:
        yield registry


@pytest.fixture
def bob(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    with connect(stack, tmp_path, BOB) as registry:
        yield registry


def sealed(registry: Client, model: str, **fields: object) -> model_pb2.ModelVersion:
    version = registry.create_version(model, **fields)  # type: ignore[arg-type]
    return registry.seal_version(version.name)


def test_search_compare_review_and_promote_through_a_gate(alice: Client, bob: Client) -> None:
    model = f"team-a/{unique('gov')}"
    alice.create_model(model)
    for auc, lr in ((0.80, 0.1), (0.95, 0.01), (0.90, 0.001)):
        sealed(alice, model, metrics={"auc": auc}, params={"optimizer": {"lr": lr}}, tags={"run": str(auc)})

    best = list(
        alice.list_versions(model, filter="metrics.auc >= 0.85", order_by="metrics.auc desc", page_size=1)
    )
    assert [v.number for v in best] == [2, 3]  # every page, one version per page
    across = list(
        alice.search_versions("team-a", filter=f'model_id = "{model.split("/")[1]}" AND number > 2')
    )
    assert [v.name for v in across] == [f"namespaces/{model.replace('/', '/models/')}/versions/3"]

    comparison = alice.compare_versions(f"{model}/1", f"{model}/2")
    assert [(r.key, r.values, r.differs) for r in comparison.metrics] == [("auc", (0.8, 0.95), True)]
    assert [(r.key, r.values) for r in comparison.params] == [("optimizer.lr", (0.1, 0.01))]
    assert [r.key for r in comparison.differences] == ["auc", "optimizer.lr"]

    protection = alice.protect_alias(
        model, "production", metric_gate="metrics.auc >= 0.9", not_worse={"auc": "max"}
    )
    assert protection.no_regression[0].direction == model_pb2.METRIC_DIRECTION_MAXIMIZE
    assert alice.get_alias_protection(model, "production").metric_gate == "metrics.auc >= 0.9"

    alice.submit_for_review(f"{model}/2", comment="best so far")
    with pytest.raises(sdk_errors.PermissionDenied) as denied:
        alice.approve_version(f"{model}/2")
    assert denied.value.reason == "SELF_APPROVAL_NOT_ALLOWED"
    approved = bob.approve_version(f"{model}/2", comment="ok")
    assert approved.review_state == model_pb2.MODEL_VERSION_REVIEW_STATE_APPROVED
    assert [(r.actor, r.comment) for r in approved.reviews] == [(ALICE, "best so far"), (BOB, "ok")]

    with pytest.raises(sdk_errors.FailedPrecondition) as refused:
        alice.set_alias(model, "production", 3)  # not approved
    assert refused.value.reason == "PROTECTED_ALIAS_VERSION_NOT_APPROVED"
    alias = alice.set_alias(model, "production", 2)
    assert alice.get_alias(model, "production").version_number == 2
    assert [a.name for a in alice.list_aliases(model)] == [alias.name]

    alice.submit_for_review(f"{model}/3")
    bob.approve_version(f"{model}/3")
    with pytest.raises(sdk_errors.FailedPrecondition) as regression:
        alice.set_alias(model, "production", 3)
    assert regression.value.reason == "METRIC_REGRESSION"
    assert (regression.value.metadata["candidate_value"], regression.value.metadata["current_value"]) == (
        "0.9",
        "0.95",
    )

    with pytest.raises(sdk_errors.FailedPrecondition):
        alice.delete_alias(model, "production")
    alice.unprotect_alias(model, "production")
    with pytest.raises(sdk_errors.NotFound):
        alice.get_alias_protection(model, "production")
    alice.delete_alias(model, "production", etag=alice.get_alias(model, "production").etag)
    assert list(alice.list_aliases(model)) == []

    bob.submit_for_review(f"{model}/1")
    assert alice.reject_version(f"{model}/1", comment="too weak").review_state == (
        model_pb2.MODEL_VERSION_REVIEW_STATE_REJECTED
    )
    with pytest.raises(ValueError, match="direction 'up'"):
        alice.protect_alias(model, "production", not_worse={"auc": "up"})

    trail = list(alice.list_events(model=model, actions=["alias_moved", "ALIAS_CREATED", "ALIAS_DELETED"]))
    assert [e.action for e in trail] == ["ALIAS_CREATED", "ALIAS_DELETED"]
    approvals = list(alice.list_events(model=model, actor=BOB, actions="MODEL_VERSION_APPROVED"))
    assert [e.resource.rsplit("/", 1)[1] for e in approvals] == ["2", "3"]


def test_the_blocking_client_watches_from_now(alice: Client) -> None:
    model = f"team-a/{unique('now')}"
    alice.create_model(model)  # before the watch: not delivered
    stream = alice.watch_events(from_now=True, model=model)
    # The stream opens at the first next() (iterators are lazy), so "now" is then: keep creating
    # versions from another thread until one arrives.
    watching = threading.Event()

    def create_versions() -> None:
        while not watching.wait(0.2):
            alice.create_version(model)

    creator = threading.Thread(target=create_versions)
    creator.start()
    try:
        first = next(stream)
        second = next(stream)
    finally:
        watching.set()
        creator.join()
        stream.close()  # ends the server stream
    assert (first.action, second.action) == ("MODEL_VERSION_CREATED", "MODEL_VERSION_CREATED")
    assert second.sequence > first.sequence
    assert int(second.resource.rsplit("/", 1)[1]) == int(first.resource.rsplit("/", 1)[1]) + 1


async def test_a_watch_survives_restarts_and_crashes_and_sees_every_event_once(
    stack: LocalStack, tmp_path: Path, isolated: Isolated
) -> None:
    service = isolated
    await asyncio.to_thread(service.start)
    settings = ClientSettings(
        addresses=ServiceAddresses(service.address, stack.addresses.artifacts),
        token=service.admin_token,  # its database knows only its bootstrap admin
        cache_dir=tmp_path / "cache",
        # Enough budget to outlast the channel's own reconnect backoff (up to 2 s) after a restart.
        retry=RetryPolicy(attempts=10, initial_backoff=0.1, max_backoff=1.0),
    )
    received: list[event_pb2.Event] = []
    reconnects: list[tuple[str, int]] = []
    try:
        async with AsyncClient(settings=settings) as registry:

            async def watch() -> None:
                async for event in registry.watch_events(
                    on_reconnect=lambda error, after, _: reconnects.append((error.reason, after))
                ):
                    received.append(event)

            async def mutate(count: int) -> None:
                for _ in range(count):
                    await registry.create_version(model)

            async def received_all() -> int:
                """Wait until the watcher has every event of the trail; returns how many."""
                for _ in range(300):
                    trail = [e.sequence async for e in registry.list_events()]
                    if trail and [e.sequence for e in received] == trail:
                        return len(trail)
                    await asyncio.sleep(0.05)
                pytest.fail(f"the watcher saw {[e.sequence for e in received]}, the trail is {trail}")

            watcher = asyncio.create_task(watch())
            model = f"team-w/{unique('m')}"
            await registry.create_model(model)
            await mutate(3)
            before_restart = await received_all()

            await asyncio.to_thread(service.stop)  # SIGTERM: streams end with SHUTTING_DOWN
            await asyncio.to_thread(service.start)
            await mutate(3)
            before_crash = await received_all()

            await asyncio.to_thread(service.kill)  # no goodbye: the connection just drops
            await asyncio.to_thread(service.start)
            await mutate(3)
            total = await received_all()
            watcher.cancel()

            trail = [e async for e in registry.list_events()]
    finally:
        await asyncio.to_thread(service.stop)

    # The bootstrap admin's token and binding come first (by the registry itself), then the
    # namespace and model created, then 9 versions.
    bootstrap = [e for e in trail if e.actor == "system:modelreg"]
    assert total == len(trail) == len(bootstrap) + 2 + 3 * 3
    assert [(e.sequence, e.id) for e in received] == [(e.sequence, e.id) for e in trail]  # once, in order
    assert [e.sequence for e in received] == list(range(1, total + 1))
    # Each reconnection resumed after the last event seen (the shutdown also said where it was).
    resumed_after = {after for _, after in reconnects}
    assert before_restart in resumed_after
    assert before_crash in resumed_after
    assert "SHUTTING_DOWN" in {reason for reason, _ in reconnects}


def test_versions_are_deleted_restored_and_purged(alice: Client) -> None:
    model = f"team-a/{unique('purge')}"
    alice.create_model(model)
    first = f"{model}/{alice.create_version(model).number}"

    with pytest.raises(sdk_errors.FailedPrecondition) as live:
        alice.purge_version(first)
    assert live.value.reason == "NOT_DELETED"
    assert "delete it first" in live.value.message
    assert alice.delete_version(first).deleted
    assert [v.number for v in alice.list_versions(model)] == []
    assert not alice.undelete_version(first).deleted
    deleted = alice.delete_version(first)
    with pytest.raises(sdk_errors.Aborted):
        alice.purge_version(first, etag="stale")
    alice.purge_version(first, etag=deleted.etag)

    with pytest.raises(sdk_errors.NotFound) as gone:
        alice.get_version(first)
    assert gone.value.reason == "VERSION_PURGED"
    with pytest.raises(sdk_errors.NotFound):
        alice.purge_version(first)
    assert list(alice.list_versions(model, show_deleted=True)) == []
    assert alice.create_version(model).number == 2  # the purged number is never given again
    purges = list(alice.list_events(resource=first, actions="MODEL_VERSION_PURGED"))
    assert [(e.resource, e.actor) for e in purges] == [
        (f"namespaces/{model.replace('/', '/models/')}/versions/1", ALICE)
    ]


async def test_state_at_and_aliases_at_answer_what_was_there_then(stack: LocalStack, tmp_path: Path) -> None:
    async with AsyncClient(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, ALICE),
        cache_dir=tmp_path / "cache",
    ) as registry:
        model = f"team-a/{unique('then')}"
        await registry.create_model(model)
        for auc in (0.8, 0.9):
            version = await registry.create_version(model, metrics={"auc": auc})
            await registry.seal_version(version.name)
        await registry.set_alias(model, "production", 1)
        created = [e async for e in registry.list_events(model=model, actions="ALIAS_CREATED")]
        then = created[0].time.ToDatetime(tzinfo=UTC)
        await asyncio.sleep(0.01)  # later moves in later milliseconds
        await registry.set_alias(model, "production", 2)
        await registry.set_alias(model, "staging", 1)
        await registry.set_alias(model, "canary", 2)
        await registry.delete_alias(model, "canary")
        now = datetime.now(UTC)

        def pointers(states: list[StateAtTime]) -> list[tuple[str, int]]:
            return [(s.alias.name.rsplit("/", 1)[1], s.alias.version_number) for s in states]

        assert pointers(await registry.aliases_at(model, then)) == [("production", 1)]
        assert pointers(await registry.aliases_at(model, now)) == [("production", 2), ("staging", 1)]
        assert pointers(await registry.aliases_at(model, then - timedelta(seconds=1))) == []

        production = await registry.state_at(f"{model}@production", then)
        assert (production.alias.version_number, production.as_of.action) == (1, "ALIAS_CREATED")
        assert production.alias.update_actor == ALICE
        first = await registry.state_at(f"{model}/1", then)
        assert dict(first.model_version.metrics) == {"auc": 0.8}
        assert first.model_version.state == model_pb2.MODEL_VERSION_STATE_READY
        with pytest.raises(sdk_errors.NotFound) as caught:
            await registry.state_at(f"{model}@staging", then)
        assert caught.value.reason == "NOT_FOUND_AT_TIME"
        with pytest.raises(ValueError, match="time zone"):
            await registry.state_at(f"{model}@production", datetime.now())


def test_a_namespace_that_allows_self_approval_lets_the_creator_approve(alice: Client) -> None:
    namespace = unique("team")
    model = f"{namespace}/m"
    alice.create_model(model)
    mine = sealed(alice, model)
    alice.submit_for_review(mine.name)
    with pytest.raises(sdk_errors.PermissionDenied) as denied:
        alice.approve_version(mine.name)
    assert denied.value.reason == "SELF_APPROVAL_NOT_ALLOWED"
    assert not alice.get_namespace(namespace).allow_self_approval

    allowed = alice.update_namespace(namespace, allow_self_approval=True, description="a small team")
    assert (allowed.allow_self_approval, allowed.description) == (True, "a small team")
    assert alice.approve_version(mine.name).review_state == model_pb2.MODEL_VERSION_REVIEW_STATE_APPROVED
    assert f"namespaces/{namespace}" in [n.name for n in alice.list_namespaces()]

    # Back to four eyes: False is an update too (the mask names it).
    again = alice.update_namespace(namespace, allow_self_approval=False)
    assert (again.allow_self_approval, again.description) == (False, "a small team")
    second = sealed(alice, model)
    alice.submit_for_review(second.name)
    with pytest.raises(sdk_errors.PermissionDenied):
        alice.approve_version(second.name)
    with pytest.raises(ValueError, match="nothing to update"):
        alice.update_namespace(namespace)
    with pytest.raises(sdk_errors.Aborted):
        alice.update_namespace(namespace, allow_self_approval=True, etag="stale")
