"""The metadata service through gRPC: models, versions, aliases, and bad input."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import struct_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.support import ACTOR, error_info, new_model, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration


async def test_create_get_and_list_models(metadata: MetadataStub) -> None:
    namespace = unique("ns")
    created = []
    for model_id in ("b-model", "a-model", "c-model"):
        created.append(
            await metadata.CreateModel(
                md.CreateModelRequest(
                    parent=f"namespaces/{namespace}",
                    model_id=model_id,
                    model=model_pb2.Model(description=f"{model_id} description", labels={"task": "nlp"}),
                ),
                metadata=ACTOR,
            )
        )
    first = created[0]
    assert first.name == f"namespaces/{namespace}/models/b-model"
    assert first.display_name == "b-model"
    assert first.create_actor == "user:alice@example.com"
    assert first.uid
    assert first.etag
    assert first.create_time.seconds > 0

    fetched = await metadata.GetModel(md.GetModelRequest(name=first.name))
    assert fetched == first

    page1 = await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{namespace}", page_size=2))
    assert [m.name.rsplit("/", 1)[1] for m in page1.models] == ["a-model", "b-model"]
    assert page1.next_page_token
    page2 = await metadata.ListModels(
        md.ListModelsRequest(parent=f"namespaces/{namespace}", page_size=2, page_token=page1.next_page_token)
    )
    assert [m.name.rsplit("/", 1)[1] for m in page2.models] == ["c-model"]
    assert page2.next_page_token == ""


async def test_duplicate_model_name_is_already_exists(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    namespace, model_id = model.name.split("/")[1], model.name.split("/")[3]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id=model_id))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert model.name in (caught.value.details() or "")
    # The same id in another namespace is a different model.
    other = await metadata.CreateModel(
        md.CreateModelRequest(parent="namespaces/other-team", model_id=model_id)
    )
    assert other.uid != model.uid


async def test_unknown_model_is_not_found(metadata: MetadataStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.GetModel(md.GetModelRequest(name="namespaces/team-a/models/never-created"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(parent="namespaces/team-a/models/never-created")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (md.CreateModelRequest(parent="", model_id="x"), "parent"),
        (md.CreateModelRequest(parent="namespaces/team-a", model_id=""), "model_id"),
        (md.CreateModelRequest(parent="namespaces/team-a", model_id="Has Spaces"), "model_id"),
        (md.CreateModelRequest(parent="namespaces/team-a", model_id="a" * 129), "model_id"),
        (md.CreateModelRequest(parent="namespaces/team-a", model_id="../etc"), "model_id"),
        (md.CreateModelRequest(parent="namespaces/$where", model_id="x"), "parent"),
        (md.CreateModelRequest(parent="projects/x", model_id="x"), "parent"),
        (
            md.CreateModelRequest(
                parent="namespaces/team-a", model_id="ok", model=model_pb2.Model(description="d" * 9000)
            ),
            "model.description",
        ),
    ],
)
async def test_malformed_create_model_is_invalid_argument(
    metadata: MetadataStub, request_: md.CreateModelRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModel(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, fields = error_info(caught.value)
    assert fields == [field]
    assert (caught.value.details() or "").startswith(field)
    assert reason


async def test_versions_are_numbered_per_model_and_keep_their_fields(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    params = struct_pb2.Struct()
    params.update({"optimizer": {"name": "adam", "lr": 0.001}, "layers": [64, 32]})
    first = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(
            parent=model.name,
            model_version=model_pb2.ModelVersion(
                description="first try",
                params=params,
                metrics={"accuracy": 0.91, "loss.val": 0.2},
                tags={"data.set": "v1"},
                lineage=model_pb2.Lineage(source_commit="abc123", training_run_id="run-7"),
            ),
        ),
        metadata=ACTOR,
    )
    second = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=ACTOR
    )
    assert (first.number, second.number) == (1, 2)
    assert first.name == f"{model.name}/versions/1"
    assert first.state == model_pb2.MODEL_VERSION_STATE_PENDING
    assert first.create_actor == "user:alice@example.com"

    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=first.name))
    assert fetched.params == params
    assert dict(fetched.metrics) == {"accuracy": 0.91, "loss.val": 0.2}
    assert dict(fetched.tags) == {"data.set": "v1"}
    assert fetched.lineage.source_commit == "abc123"

    listed = await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name, page_size=1))
    assert [v.number for v in listed.model_versions] == [1]
    rest = await metadata.ListModelVersions(
        md.ListModelVersionsRequest(parent=model.name, page_token=listed.next_page_token)
    )
    assert [v.number for v in rest.model_versions] == [2]
    assert (await metadata.GetModel(md.GetModelRequest(name=model.name))).latest_version_number == 2


async def test_concurrent_version_creation_gives_distinct_gap_free_numbers(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    versions = await asyncio.gather(
        *(metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name)) for _ in range(16))
    )
    assert sorted(v.number for v in versions) == list(range(1, 17))


async def test_non_finite_metric_is_rejected_naming_the_metric(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model.name, model_version=model_pb2.ModelVersion(metrics={"loss": float("nan")})
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["metrics[loss]"]


async def test_alias_points_at_a_version_and_moves(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    v1 = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
    v2 = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
    alias_name = f"{model.name}/aliases/production"

    alias = await metadata.SetAlias(
        md.SetAliasRequest(name=alias_name, model_version=v1.name), metadata=ACTOR
    )
    assert (alias.model_version, alias.version_number, alias.update_actor) == (
        v1.name,
        1,
        "user:alice@example.com",
    )
    resolved = await metadata.GetModelVersionByAlias(md.GetModelVersionByAliasRequest(name=alias_name))
    assert resolved.name == v1.name
    assert list(resolved.aliases) == ["production"]

    moved = await metadata.SetAlias(
        md.SetAliasRequest(name=alias_name, model_version=v2.name, etag=alias.etag)
    )
    assert moved.version_number == 2
    assert (
        await metadata.GetModelVersionByAlias(md.GetModelVersionByAliasRequest(name=alias_name))
    ).number == 2

    # A writer holding the old etag lost the race.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.SetAlias(md.SetAliasRequest(name=alias_name, model_version=v1.name, etag=alias.etag))
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert (
        await metadata.GetModelVersionByAlias(md.GetModelVersionByAliasRequest(name=alias_name))
    ).number == 2


async def test_alias_bad_input(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    other = await new_model(metadata)
    v1 = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=other.name))
    cases = [
        (
            md.SetAliasRequest(name=f"{model.name}/aliases/Prod!", model_version=v1.name),
            "INVALID_ARGUMENT",
            "name",
        ),
        (
            md.SetAliasRequest(name=f"{model.name}/aliases/prod", model_version="versions/1"),
            "INVALID_ARGUMENT",
            "model_version",
        ),
        (
            md.SetAliasRequest(name=f"{model.name}/aliases/prod", model_version=v1.name),
            "INVALID_ARGUMENT",
            "model_version",
        ),
        (
            md.SetAliasRequest(name=f"{model.name}/aliases/prod", model_version=f"{model.name}/versions/7"),
            "NOT_FOUND",
            None,
        ),
    ]
    for request, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.SetAlias(request)
        assert caught.value.code().name == code, request
        if field:
            assert error_info(caught.value)[1] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.GetModelVersionByAlias(
            md.GetModelVersionByAliasRequest(name=f"{model.name}/aliases/nope")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_page_token_from_another_query_is_rejected(metadata: MetadataStub) -> None:
    namespace = unique("ns")
    for _ in range(2):
        await new_model(metadata, namespace)
    page = await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{namespace}", page_size=1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModels(
            md.ListModelsRequest(parent="namespaces/team-a", page_token=page.next_page_token)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["page_token"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModels(
            md.ListModelsRequest(parent=f"namespaces/{namespace}", page_token="garbage!")
        )
    assert error_info(caught.value)[1] == ["page_token"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{namespace}", page_size=-1))
    assert error_info(caught.value)[1] == ["page_size"]


async def test_concurrent_alias_moves_with_one_etag_have_exactly_one_winner(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    versions = [
        await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name)) for _ in range(8)
    ]
    alias_name = f"{model.name}/aliases/champion"
    start = await metadata.SetAlias(md.SetAliasRequest(name=alias_name, model_version=versions[0].name))

    results = await asyncio.gather(
        *(
            metadata.SetAlias(md.SetAliasRequest(name=alias_name, model_version=v.name, etag=start.etag))
            for v in versions[1:] * 4
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == len(results) - 1
    assert {r.code() for r in losers} == {grpc.StatusCode.ABORTED}
    final = await metadata.GetModelVersionByAlias(md.GetModelVersionByAliasRequest(name=alias_name))
    assert final.number == winners[0].version_number
