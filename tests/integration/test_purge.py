"""PurgeModelVersion through gRPC: only soft-deleted versions, gone for good, the number never
reused, the event in the trail with its actor, and a purge killed half-way finished by a retry."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import json_format
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.integration.isolated import CRASHED, Isolated
from tests.support import as_actor, error_info, events_when, list_all_events, new_model, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")
BOB = as_actor("user:bob@example.com")


async def refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    """The code, reason and message of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_info(caught.value)[0], caught.value.details() or ""


async def purge(metadata: MetadataStub, name: str, etag: str = "", actor: Any = ALICE) -> None:
    await metadata.PurgeModelVersion(md.PurgeModelVersionRequest(name=name, etag=etag), metadata=actor)


async def test_only_a_soft_deleted_version_can_be_purged(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
    )

    code, reason, message = await refused(purge(metadata, version.name))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_DELETED")
    assert "delete it first" in message
    code, reason, _ = await refused(purge(metadata, f"{model.name}/versions/99"))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await purge(metadata, f"{model.name}/aliases/production")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["name"]

    deleted = await metadata.DeleteModelVersion(
        md.DeleteModelVersionRequest(name=version.name), metadata=ALICE
    )
    code, _, _ = await refused(purge(metadata, version.name, etag="not-its-etag"))
    assert code == grpc.StatusCode.ABORTED
    # Refused calls changed nothing: the version is still there to restore.
    restored = await metadata.UndeleteModelVersion(
        md.UndeleteModelVersionRequest(name=version.name), metadata=ALICE
    )
    assert (restored.deleted, restored.uid) == (False, deleted.uid)
    events = await events_when(metadata, 3, resource=version.name)
    assert "MODEL_VERSION_PURGED" not in [e.action for e in events]


async def test_a_purged_version_is_gone_for_good_and_its_number_never_comes_back(
    metadata: MetadataStub,
) -> None:
    model = (await new_model(metadata)).name
    first, second = [
        (await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model), metadata=ALICE)).name
        for _ in range(2)
    ]
    points = [model_pb2.MetricPoint(key="loss", value=1 / (step + 1), step=step) for step in range(1500)]
    for start in (0, 1000):  # two history documents
        await metadata.LogMetrics(
            md.LogMetricsRequest(model_version=second, points=points[start : start + 1000]), metadata=ALICE
        )
    deleted = await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=second), metadata=ALICE)
    await purge(metadata, second, etag=deleted.etag, actor=BOB)

    code, reason, message = await refused(metadata.GetModelVersion(md.GetModelVersionRequest(name=second)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "VERSION_PURGED")
    assert "purged" in message
    code, reason, _ = await refused(purge(metadata, second))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "VERSION_PURGED")
    code, _, _ = await refused(
        metadata.UndeleteModelVersion(md.UndeleteModelVersionRequest(name=second), metadata=ALICE)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, _, _ = await refused(
        metadata.ListMetricHistory(md.ListMetricHistoryRequest(model_version=second, metric_key="loss"))
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, _, _ = await refused(
        metadata.SetAlias(
            md.SetAliasRequest(name=f"{model}/aliases/production", model_version=second), metadata=ALICE
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    for show_deleted in (False, True):
        listed = await metadata.ListModelVersions(
            md.ListModelVersionsRequest(parent=model, show_deleted=show_deleted)
        )
        assert [v.name for v in listed.model_versions] == [first]
    across = await metadata.ListModelVersions(
        md.ListModelVersionsRequest(
            parent=f"{model.rsplit('/models/', 1)[0]}/models/-", show_deleted=True, page_size=1000
        )
    )
    assert second not in [v.name for v in across.model_versions]

    # The number stays taken: the next version is 3, not 2 again.
    third = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model), metadata=ALICE)
    assert third.number == 3
    assert (await metadata.GetModel(md.GetModelRequest(name=model))).latest_version_number == 3

    # The trail keeps the version's history and adds the purge, with its actor.
    history = await events_when(metadata, 5, resource=second)
    assert [e.action for e in history] == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_DELETED",
        "MODEL_VERSION_PURGED",
    ]
    purged = history[-1]
    assert purged.actor == "user:bob@example.com"
    assert json_format.MessageToDict(purged.before) == {"purged": False}
    assert json_format.MessageToDict(purged.after) == {"purged": True}
    by_bob = await list_all_events(metadata, actions=["MODEL_VERSION_PURGED"], actor="user:bob@example.com")
    assert purged.id in [e.id for e in by_bob]

    # Its past is still answerable; from the purge on it did not exist.
    before = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=second, time=history[3].time))
    assert before.model_version.deleted
    assert before.model_version.metrics["loss"] == pytest.approx(1 / 1500)
    code, reason, message = await refused(
        metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=second, time=purged.time))
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND_AT_TIME")
    assert "purged" in message


async def history_documents(db: Any, version_key: str) -> list[str]:
    # A test may scan: the history documents of one version, found by their `_id` prefix.
    return [
        doc["_id"]
        async for doc in db["metric_series"].find({}, {"_id": True})
        if doc["_id"].startswith(version_key)
    ]


@pytest.mark.parametrize("finisher", ["purge again", "retention"])
async def test_a_purge_killed_after_its_commit_is_finished_later(isolated: Isolated, finisher: str) -> None:
    isolated.start()
    async with isolated.stub() as metadata:
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent="namespaces/purge", model_id="m"), metadata=ALICE
        )
        names = [
            (
                await metadata.CreateModelVersion(
                    md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
                )
            ).name
            for _ in range(3)
        ]
        doomed = names[2]
        for key, count in (("loss", 1000), ("acc", 10)):
            await metadata.LogMetrics(
                md.LogMetricsRequest(
                    model_version=doomed,
                    points=[model_pb2.MetricPoint(key=key, value=0.5, step=s) for s in range(count)],
                ),
                metadata=ALICE,
            )
        await metadata.LogMetrics(
            md.LogMetricsRequest(
                model_version=doomed, points=[model_pb2.MetricPoint(key="loss", value=0.1, step=1000)]
            ),
            metadata=ALICE,
        )
        await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=doomed), metadata=ALICE)
    isolated.stop()

    async with isolated.database() as db:
        assert sorted(await history_documents(db, "purge/m/3|")) == [
            "purge/m/3|0|acc",
            "purge/m/3|0|loss",
            "purge/m/3|1|loss",
        ]

        # Killed right after the version became a tombstone carrying the event, before its
        # history documents were deleted.
        isolated.start("crash-after-commit@MODEL_VERSION_PURGED")
        async with isolated.stub() as metadata:
            code, _, _ = await refused(purge(metadata, doomed, actor=BOB))
            assert code == grpc.StatusCode.UNAVAILABLE
        assert isolated.wait_crashed() == CRASHED
        assert len(await history_documents(db, "purge/m/3|")) == 3

        if finisher == "retention":
            isolated.env["MODELREG_PURGE_DELETED_AFTER_DAYS"] = str(1 / 86400)
        isolated.start()
        async with isolated.stub() as metadata:
            code, reason, _ = await refused(metadata.GetModelVersion(md.GetModelVersionRequest(name=doomed)))
            assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "VERSION_PURGED")
            # Purging again finishes the interrupted purge (one event all the same), and so does
            # the next round of the retention when it is on...
            if finisher == "purge again":
                await purge(metadata, doomed, actor=BOB)
            deadline = asyncio.get_running_loop().time() + 15
            while await history_documents(db, "purge/m/3|"):
                assert asyncio.get_running_loop().time() < deadline, "the purge was not finished"
                await asyncio.sleep(0.2)
            # ...and once finished, it is NOT_FOUND.
            code, reason, _ = await refused(purge(metadata, doomed, actor=BOB))
            assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "VERSION_PURGED")
            trail = await list_all_events(metadata)
            assert [e.sequence for e in trail] == list(range(1, len(trail) + 1))
            purges = [e for e in trail if e.action == "MODEL_VERSION_PURGED"]
            assert [(e.resource, e.actor) for e in purges] == [(doomed, "user:bob@example.com")]
            # The untouched versions are intact.
            for name in names[:2]:
                await metadata.GetModelVersion(md.GetModelVersionRequest(name=name))
        isolated.stop()

        # Even with the model's stored counter lagging (as after a crash), number 3 stays taken.
        await db["models"].update_one({"_id": "purge/m"}, {"$set": {"latest_version_number": 1}})
        isolated.start()
        async with isolated.stub() as metadata:
            created = await metadata.CreateModelVersion(
                md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
            )
            assert created.number == 4
        isolated.stop()


async def test_concurrent_purges_of_one_version_purge_it_once(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
    )
    await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=version.name), metadata=ALICE)
    outcomes = await asyncio.gather(
        *(purge(metadata, version.name) for _ in range(8)), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 7
    for failure in failures:
        assert isinstance(failure, grpc.aio.AioRpcError)
        assert (failure.code(), error_info(failure)[0]) == (grpc.StatusCode.NOT_FOUND, "VERSION_PURGED")
    events = await events_when(metadata, 3, resource=version.name)
    assert [e.action for e in events].count("MODEL_VERSION_PURGED") == 1


async def test_a_version_purged_in_a_namespace_search_is_gone_from_it(metadata: MetadataStub) -> None:
    namespace = f"namespaces/{unique('purge')}"
    model = await metadata.CreateModel(md.CreateModelRequest(parent=namespace, model_id="m"), metadata=ALICE)
    versions = [
        await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model.name, model_version=model_pb2.ModelVersion(tags={"k": "v"})
            ),
            metadata=ALICE,
        )
        for _ in range(2)
    ]
    search = md.ListModelVersionsRequest(
        parent=f"{namespace}/models/-", filter='tags.k = "v"', show_deleted=True
    )
    assert len((await metadata.ListModelVersions(search)).model_versions) == 2  # the namespace is loaded
    await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=versions[0].name), metadata=ALICE)
    await purge(metadata, versions[0].name)
    assert [v.name for v in (await metadata.ListModelVersions(search)).model_versions] == [versions[1].name]
    everything = md.ListModelVersionsRequest(parent=f"{namespace}/models/-", show_deleted=True)
    assert [v.name for v in (await metadata.ListModelVersions(everything)).model_versions] == [
        versions[1].name
    ]


async def test_a_retention_period_purges_versions_deleted_longer_than_it(isolated: Isolated) -> None:
    keep_seconds = 4.0
    isolated.env["MODELREG_PURGE_DELETED_AFTER_DAYS"] = str(keep_seconds / 86400)
    isolated.start()
    async with isolated.stub() as metadata:
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent="namespaces/retention", model_id="m"), metadata=ALICE
        )
        expired, restored, recent = [
            (
                await metadata.CreateModelVersion(
                    md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
                )
            ).name
            for _ in range(3)
        ]
        await metadata.LogMetrics(
            md.LogMetricsRequest(model_version=expired, points=[model_pb2.MetricPoint(key="acc", value=0.5)]),
            metadata=ALICE,
        )
        for name in (expired, restored):
            await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=name), metadata=ALICE)
        await metadata.UndeleteModelVersion(md.UndeleteModelVersionRequest(name=restored), metadata=ALICE)

        async def purged(name: str) -> bool:
            try:
                await metadata.GetModelVersion(md.GetModelVersionRequest(name=name))
            except grpc.aio.AioRpcError as exc:
                return error_info(exc)[0] == "VERSION_PURGED"
            return False

        loop = asyncio.get_running_loop()
        deadline = loop.time() + keep_seconds + 15
        while not await purged(expired):
            assert loop.time() < deadline, "the expired version was not purged"
            await asyncio.sleep(0.2)
        deleted_at = loop.time()
        await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=recent), metadata=ALICE)
        await asyncio.sleep(1.5)  # a round or more: the version deleted just now is not due yet
        listed = await metadata.ListModelVersions(
            md.ListModelVersionsRequest(parent=model.name, show_deleted=True)
        )
        if loop.time() - deleted_at < keep_seconds:  # unless this machine stalled that long
            assert [(v.name, v.deleted) for v in listed.model_versions] == [(restored, False), (recent, True)]
        while not await purged(recent):
            assert loop.time() < deadline + keep_seconds, "the recently deleted version was not purged"
            await asyncio.sleep(0.2)

        purges = await list_all_events(metadata, actions=["MODEL_VERSION_PURGED"])
        assert [(e.resource, e.actor) for e in purges] == [
            (expired, "system:retention"),
            (recent, "system:retention"),
        ]
    isolated.stop()
