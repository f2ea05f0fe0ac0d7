"""The rules of the version store: numbers 1..n per model without gaps and never reused,
idempotent creates, compare-and-set on etags, soft delete and undelete, purge tombstones, metric
summaries and histories, the blobs manifests reference, and an event with every change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from modelreg_api.errors import Aborted, FailedPrecondition, NotFound
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import AliasProtection, MetricPoint, ModelFile, ModelVersion
from modelreg_metadata.registry import idempotency

from tests.contract.conftest import Stores, create_model, create_version, event
from tests.support import unique


def changed(version: ModelVersion, **fields: object) -> ModelVersion:
    return replace(version, **fields, update_time=now(), etag=new_etag())  # type: ignore[arg-type]


async def update(stores: Stores, version: ModelVersion, etag: str = "", **fields: object) -> ModelVersion:
    _, after = await stores.versions.update_version(
        version.name,
        lambda current, _: changed(current, **fields),
        etag,
        event(Action.MODEL_VERSION_UPDATED),
        include_deleted=True,
    )
    return after


async def test_concurrent_creates_number_each_model_1_to_n_without_gaps(stores: Stores) -> None:
    first = await create_model(stores)
    second = await create_model(stores, first.name.namespace)
    made = await asyncio.gather(
        *(create_version(stores, model) for _ in range(12) for model in (first, second))
    )
    for model in (first, second):
        numbers = sorted(v.number for v in made if v.name.model_name == model.name)
        assert numbers == list(range(1, 13))
        assert (await stores.models.get_model(model.name)).latest_version_number == 12
    for version in made:
        stored = await stores.versions.get_version(version.name)
        assert stored.uid == version.uid
        assert await stores.events_of(str(version.name)) == ["MODEL_VERSION_CREATED"]


async def test_a_create_retried_with_its_request_key_gets_the_version_it_made(stores: Stores) -> None:
    model = await create_model(stores)
    key = idempotency.request_key("CreateModelVersion", str(model.name), unique("request"))
    together = await asyncio.gather(*(create_version(stores, model, key) for _ in range(4)))
    assert {v.number for v in together} == {1}
    assert {v.uid for v in together} == {together[0].uid}
    assert (await create_version(stores, model, key)).uid == together[0].uid
    assert (await create_version(stores, model)).number == 2
    assert await stores.events_of(str(model.name.version(1))) == ["MODEL_VERSION_CREATED"]


async def test_a_create_needs_its_model(stores: Stores) -> None:
    model = await create_model(stores)
    await stores.models.update_model(
        model.name, lambda m: replace(m, deleted=True, etag=new_etag()), "", event(Action.MODEL_DELETED)
    )
    with pytest.raises(NotFound):
        await create_version(stores, model)


async def test_updates_compare_etags_and_an_unchanged_version_writes_nothing(stores: Stores) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model, description="first")
    with pytest.raises(Aborted):
        await update(stores, version, "stale", description="lost")
    after = await update(stores, version, version.etag, description="second")
    assert after.description == "second"
    assert await stores.versions.get_version(version.name) == after

    before, same = await stores.versions.update_version(
        version.name, lambda current, _: current, "", event(Action.MODEL_VERSION_FILE_ADDED)
    )
    assert same is before
    assert (await stores.versions.get_version(version.name)).etag == after.etag
    assert await stores.events_of(str(version.name)) == ["MODEL_VERSION_CREATED", "MODEL_VERSION_UPDATED"]

    async def racer(i: int) -> bool:
        try:
            await update(stores, after, after.etag, description=f"racer {i}")
        except Aborted:
            return False
        return True

    assert sorted(await asyncio.gather(*(racer(i) for i in range(6)))) == [False] * 5 + [True]


async def test_a_version_update_sees_its_models_protected_aliases(stores: Stores) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model)
    protection = AliasProtection(model.name.alias("production"), metric_gate="metrics.acc > 0.5")
    await stores.models.change_protection(
        protection.name, lambda current, alias: protection, event(Action.ALIAS_PROTECTED)
    )
    seen: list[dict[str, AliasProtection]] = []

    def mutate(current: ModelVersion, protections: dict[str, AliasProtection]) -> ModelVersion:
        seen.append(protections)
        return changed(current, description="x")

    await stores.versions.update_version(version.name, mutate, "", event(Action.MODEL_VERSION_UPDATED))
    assert seen == [{"production": protection}]


async def test_a_deleted_version_is_hidden_until_undeleted_and_a_deleted_model_hides_all(
    stores: Stores,
) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model)
    deleted = await update(stores, version, deleted=True)
    with pytest.raises(NotFound):
        await stores.versions.get_version(version.name)
    assert await stores.versions.get_version(version.name, include_deleted=True) == deleted
    with pytest.raises(NotFound):
        await stores.versions.update_version(
            version.name, lambda c, _: changed(c), "", event(Action.MODEL_VERSION_UPDATED)
        )
    restored = await update(stores, deleted, deleted=False)
    assert await stores.versions.get_version(version.name) == restored

    await stores.models.update_model(
        model.name, lambda m: replace(m, deleted=True, etag=new_etag()), "", event(Action.MODEL_DELETED)
    )
    with pytest.raises(NotFound):
        await stores.versions.get_version(version.name)
    with pytest.raises(NotFound):
        await stores.versions.get_version(version.name, include_deleted=True)
    with pytest.raises(NotFound):
        await stores.versions.update_version(
            version.name, lambda c, _: changed(c), "", event(Action.MODEL_VERSION_UPDATED)
        )


async def test_a_purge_leaves_a_tombstone_and_the_number_is_never_reused(stores: Stores) -> None:
    model = await create_model(stores)
    digest = "ab" * 32
    kept = "cd" * 32
    file = ModelFile("weights.bin", 3, digest, "", now())
    version = await create_version(stores, model)
    version = await update(stores, version, files=[file])
    other = await create_version(stores, model)
    await update(stores, other, files=[replace(file, sha256=kept)])
    await stores.versions.log_metrics(
        version.name,
        [MetricPoint("loss", float(i), step=i, time=now()) for i in range(3)],
        "",
        event(Action.MODEL_VERSION_METRICS_LOGGED),
    )
    version = await update(stores, await stores.versions.get_version(version.name), deleted=True)
    # A soft-deleted version still references its blobs.
    assert await stores.blob_references.referenced([kept, digest]) == [kept, digest]
    assert version.update_time is not None
    assert version.name in await stores.versions.purgeable(datetime.now(UTC) + timedelta(seconds=1))
    assert version.name not in await stores.versions.purgeable(version.update_time - timedelta(seconds=1))

    refusals: list[ModelVersion] = []

    def refuse(current: ModelVersion) -> None:
        refusals.append(current)
        raise FailedPrecondition("refused by the rule")

    with pytest.raises(FailedPrecondition):
        await stores.versions.purge_version(version.name, refuse, "", changes.purge_event)
    assert refusals == [version]
    with pytest.raises(Aborted):
        await stores.versions.purge_version(version.name, lambda _: None, "stale", changes.purge_event)
    assert await stores.versions.get_version(version.name, include_deleted=True) == version

    await stores.versions.purge_version(version.name, lambda _: None, version.etag, changes.purge_event)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: stores.versions.get_version(version.name, include_deleted=True),
        lambda: stores.versions.purge_version(version.name, lambda _: None, "", changes.purge_event),
        lambda: stores.versions.metric_history(version.name, "loss", (0, 0), 10),
        lambda: update(stores, version, deleted=False),
    ]
    for read in reads:
        with pytest.raises(NotFound) as caught:
            await read()
        assert caught.value.reason == "VERSION_PURGED"
    assert version.name not in await stores.versions.purgeable(datetime.now(UTC) + timedelta(seconds=1))
    assert await stores.blob_references.referenced([digest, kept]) == [kept]
    assert (await create_version(stores, model)).number == 3
    assert await stores.events_of(str(version.name)) == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_UPDATED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_UPDATED",
        "MODEL_VERSION_PURGED",
    ]


async def test_logged_metrics_keep_the_latest_step_as_summary_and_page_their_history(
    stores: Stores,
) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model, metrics={"acc": 0.1})
    start = now()
    points = [
        MetricPoint("loss", 1.0 / (i + 1), step=i, time=start + timedelta(seconds=i)) for i in range(25)
    ]
    key = idempotency.request_key("LogMetrics", str(version.name), "once")
    before, after = await stores.versions.log_metrics(
        version.name, points, key, event(Action.MODEL_VERSION_METRICS_LOGGED)
    )
    assert before == version
    assert after.metrics == {"acc": 0.1, "loss": 1.0 / 25}
    assert after.etag != version.etag
    assert await stores.versions.get_version(version.name) == after
    # A retry with the request key logs nothing more.
    retried, again = await stores.versions.log_metrics(
        version.name, points, key, event(Action.MODEL_VERSION_METRICS_LOGGED)
    )
    assert retried == again == after
    # An older step does not replace the summary, but joins the history.
    _, latest = await stores.versions.log_metrics(
        version.name,
        [MetricPoint("loss", 9.0, step=3, time=start)],
        "",
        event(Action.MODEL_VERSION_METRICS_LOGGED),
    )
    assert latest.metrics["loss"] == 1.0 / 25

    history: list[MetricPoint] = []
    position: tuple[int, int] | None = (0, 0)
    while position is not None:
        page, position = await stores.versions.metric_history(version.name, "loss", position, 7)
        history += page
    assert [(p.value, p.step, p.time) for p in history] == [
        *((p.value, p.step, p.time) for p in points),
        (9.0, 3, start),
    ]
    assert await stores.versions.metric_history(version.name, "nope", (0, 0), 7) == ([], None)
    assert await stores.events_of(str(version.name)) == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_METRICS_LOGGED",
    ]
