"""A request id is for one request, and a call that changes nothing writes nothing: through gRPC
(docs/metadata-service.md, "Idempotent creates"; docs/governance.md, the audit trail)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.support import ACTOR, error_info, events_when, list_all_events, new_model, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration


async def reused(call: object) -> str:
    """Awaits `call`, expecting the refusal of a reused request id; returns its message."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert error_info(caught.value) == ("REQUEST_ID_REUSED", ["request_id"])
    return caught.value.details() or ""


def version_request(model: str, description: str, request_id: str) -> md.CreateModelVersionRequest:
    return md.CreateModelVersionRequest(
        parent=model, model_version=model_pb2.ModelVersion(description=description), request_id=request_id
    )


async def test_a_request_id_reused_for_another_version_is_refused_and_a_retry_still_answers(
    metadata: MetadataStub,
) -> None:
    model = await new_model(metadata)
    first = await metadata.CreateModelVersion(version_request(model.name, "run 7", "train-run-7"))
    message = await reused(metadata.CreateModelVersion(version_request(model.name, "run 8", "train-run-7")))
    assert "'train-run-7'" in message
    assert "different request" in message
    again = await metadata.CreateModelVersion(version_request(model.name, "run 7", "train-run-7"))
    assert (again.uid, again.number) == (first.uid, 1)
    listed = await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name))
    assert [(v.number, v.description) for v in listed.model_versions] == [(1, "run 7")]


async def test_two_different_requests_racing_with_one_request_id_make_one_version(
    metadata: MetadataStub,
) -> None:
    model = await new_model(metadata)
    requests = [version_request(model.name, f"body {i % 2}", "raced") for i in range(8)]
    outcomes = await asyncio.gather(
        *(metadata.CreateModelVersion(r) for r in requests), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, model_pb2.ModelVersion)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(made) + len(refused) == len(requests)
    assert {v.uid for v in made} == {made[0].uid}  # every winner got the one version
    assert {v.description for v in made} == {made[0].description}
    assert len(refused) == 4  # the other body, every time
    assert all(error_info(e)[0] == "REQUEST_ID_REUSED" for e in refused)
    listed = await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name))
    assert len(listed.model_versions) == 1


async def test_the_other_creates_bind_their_request_id_to_one_request(metadata: MetadataStub) -> None:
    ns = unique("ns")
    created = await metadata.CreateNamespace(
        md.CreateNamespaceRequest(
            namespace_id=ns, namespace=model_pb2.Namespace(description="fraud"), request_id="ns-1"
        )
    )
    await reused(
        metadata.CreateNamespace(
            md.CreateNamespaceRequest(
                namespace_id=ns, namespace=model_pb2.Namespace(description="risk"), request_id="ns-1"
            )
        )
    )
    retried = await metadata.CreateNamespace(
        md.CreateNamespaceRequest(
            namespace_id=ns, namespace=model_pb2.Namespace(description="fraud"), request_id="ns-1"
        )
    )
    assert (retried.uid, retried.description) == (created.uid, "fraud")

    model_id = unique()
    model = await metadata.CreateModel(
        md.CreateModelRequest(
            parent=f"namespaces/{ns}", model_id=model_id, model=model_pb2.Model(owner="a"), request_id="m-1"
        )
    )
    await reused(
        metadata.CreateModel(
            md.CreateModelRequest(
                parent=f"namespaces/{ns}",
                model_id=model_id,
                model=model_pb2.Model(owner="b"),
                request_id="m-1",
            )
        )
    )
    assert (await metadata.GetModel(md.GetModelRequest(name=model.name))).owner == "a"

    version = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
    points = [model_pb2.MetricPoint(key="loss", value=0.5, step=1)]
    logged = md.LogMetricsRequest(model_version=version.name, points=points, request_id="epoch-1")
    await metadata.LogMetrics(logged)
    await reused(
        metadata.LogMetrics(
            md.LogMetricsRequest(
                model_version=version.name,
                points=[model_pb2.MetricPoint(key="loss", value=0.4, step=2)],
                request_id="epoch-1",
            )
        )
    )
    await metadata.LogMetrics(logged)  # the same request again: answered, not logged twice
    history = await metadata.ListMetricHistory(
        md.ListMetricHistoryRequest(model_version=version.name, metric_key="loss")
    )
    assert [(p.step, p.value) for p in history.points] == [(1, 0.5)]


async def test_setting_an_alias_to_where_it_points_appends_nothing_and_keeps_its_etag(
    metadata: MetadataStub,
) -> None:
    model = await new_model(metadata)
    one, two = [
        await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name), metadata=ACTOR)
        for _ in range(2)
    ]
    alias = f"{model.name}/aliases/staging"
    created = await metadata.SetAlias(md.SetAliasRequest(name=alias, model_version=one.name), metadata=ACTOR)
    model_before = await metadata.GetModel(md.GetModelRequest(name=model.name))

    again = await metadata.SetAlias(md.SetAliasRequest(name=alias, model_version=one.name), metadata=ACTOR)
    assert again == created  # same etag, same update time and actor
    with_etag = await metadata.SetAlias(
        md.SetAliasRequest(name=alias, model_version=one.name, etag=created.etag), metadata=ACTOR
    )
    assert with_etag.etag == created.etag
    assert await metadata.GetModel(md.GetModelRequest(name=model.name)) == model_before

    # A real move afterwards: once it is in the trail, everything before it is too.
    await metadata.SetAlias(md.SetAliasRequest(name=alias, model_version=two.name), metadata=ACTOR)
    events = await events_when(metadata, 2, resource=alias)
    assert [e.action for e in events] == ["ALIAS_CREATED", "ALIAS_MOVED"]
    moved = events[1]
    assert MessageToDict(moved.before)["version_number"] == 1
    assert MessageToDict(moved.after)["version_number"] == 2
    assert await list_all_events(metadata, resource=alias) == events
