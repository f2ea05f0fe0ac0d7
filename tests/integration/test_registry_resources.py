"""Namespaces, model and version updates, soft delete, lifecycle, aliases, concurrency, idempotency."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from modelreg_local.stack import METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import manifest_service_pb2 as mf
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2

from tests.support import ACTOR, authenticated_channel, error_info, new_model, unique

if TYPE_CHECKING:
    from tests.support import ManifestStub, MetadataStub

pytestmark = pytest.mark.integration


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def fails(call: object, code: grpc.StatusCode) -> tuple[str, list[str], str]:
    """Awaits `call`, expecting `code`; returns the reason, the fields in violation and the message."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    reason, fields = error_info(caught.value)
    return reason, fields, caught.value.details() or ""


async def new_version(metadata: MetadataStub, model: str, **fields: object) -> model_pb2.ModelVersion:
    return await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model, model_version=model_pb2.ModelVersion(**fields)),  # type: ignore[arg-type]
        metadata=ACTOR,
    )


# Namespaces


async def test_namespaces_are_created_explicitly_or_by_their_first_model(metadata: MetadataStub) -> None:
    ns = unique("ns")
    created = await metadata.CreateNamespace(
        md.CreateNamespaceRequest(
            namespace_id=ns, namespace=model_pb2.Namespace(description="fraud team"), request_id="r-1"
        ),
        metadata=ACTOR,
    )
    assert (created.name, created.display_name, created.create_actor) == (
        f"namespaces/{ns}",
        ns,
        "user:alice@example.com",
    )
    retried = await metadata.CreateNamespace(
        md.CreateNamespaceRequest(
            namespace_id=ns, namespace=model_pb2.Namespace(description="fraud team"), request_id="r-1"
        )
    )
    assert retried.uid == created.uid
    await fails(
        metadata.CreateNamespace(md.CreateNamespaceRequest(namespace_id=ns)), grpc.StatusCode.ALREADY_EXISTS
    )

    updated = await metadata.UpdateNamespace(
        md.UpdateNamespaceRequest(
            namespace=model_pb2.Namespace(name=created.name, display_name="Fraud", etag=created.etag),
            update_mask=mask("display_name"),
        )
    )
    assert (updated.display_name, updated.description) == ("Fraud", "fraud team")
    assert updated.etag != created.etag
    await fails(
        metadata.UpdateNamespace(
            md.UpdateNamespaceRequest(
                namespace=model_pb2.Namespace(name=created.name, display_name="x", etag=created.etag),
                update_mask=mask("display_name"),
            )
        ),
        grpc.StatusCode.ABORTED,
    )

    implicit = unique("ns")
    await new_model(metadata, implicit)
    fetched = await metadata.GetNamespace(md.GetNamespaceRequest(name=f"namespaces/{implicit}"))
    assert fetched.create_actor == "user:alice@example.com"

    names, token = [], ""
    while True:
        page = await metadata.ListNamespaces(md.ListNamespacesRequest(page_size=50, page_token=token))
        names += [n.name for n in page.namespaces]
        token = page.next_page_token
        if not token:
            break
    assert {f"namespaces/{ns}", f"namespaces/{implicit}"} <= set(names)
    assert names == sorted(names)

    _, fields, _ = await fails(
        metadata.CreateNamespace(md.CreateNamespaceRequest(namespace_id="Bad_Id")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert fields == ["namespace_id"]
    await fails(
        metadata.GetNamespace(md.GetNamespaceRequest(name="namespaces/never-made")), grpc.StatusCode.NOT_FOUND
    )


# Models


async def test_update_model_with_a_field_mask(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    updated = await metadata.UpdateModel(
        md.UpdateModelRequest(
            model=model_pb2.Model(
                name=model.name, description="new", owner="ignored-not-in-mask", etag=model.etag
            ),
            update_mask=mask("description", "labels"),
        )
    )
    assert (updated.description, updated.owner, dict(updated.labels)) == ("new", "", {})
    assert updated.etag != model.etag
    assert updated.update_time.ToDatetime() >= model.update_time.ToDatetime()

    # An empty mask updates the fields that are set; output-only fields sent back are ignored.
    card = await metadata.UpdateModel(
        md.UpdateModelRequest(model=model_pb2.Model(name=model.name, model_card="# Card", uid="x", etag=""))
    )
    assert (card.model_card, card.description, card.uid) == ("# Card", "new", model.uid)

    for path, reason in [
        ("uid", "FIELD_OUTPUT_ONLY"),
        ("name", "FIELD_IMMUTABLE"),
        ("colour", "FIELD_NOT_UPDATABLE"),
    ]:
        got, fields, message = await fails(
            metadata.UpdateModel(
                md.UpdateModelRequest(model=model_pb2.Model(name=model.name), update_mask=mask(path))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert (got, fields) == (reason, ["update_mask"])
        assert f"`{path}`" in message

    await fails(
        metadata.UpdateModel(
            md.UpdateModelRequest(
                model=model_pb2.Model(name=model.name, description="lost", etag=model.etag),
                update_mask=mask("description"),
            )
        ),
        grpc.StatusCode.ABORTED,
    )
    _, fields, _ = await fails(
        metadata.UpdateModel(
            md.UpdateModelRequest(
                model=model_pb2.Model(name=model.name, labels={"k": "v" * 5000}), update_mask=mask("labels")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert fields == ["model.labels[k]"]


async def test_soft_delete_and_undelete_a_model(metadata: MetadataStub) -> None:
    ns = unique("ns")
    model = await new_model(metadata, ns)
    version = await new_version(metadata, model.name)
    await fails(
        metadata.DeleteModel(md.DeleteModelRequest(name=model.name, etag="stale")), grpc.StatusCode.ABORTED
    )
    deleted = await metadata.DeleteModel(
        md.DeleteModelRequest(name=model.name, etag=model.etag), metadata=ACTOR
    )
    assert deleted.deleted

    await fails(metadata.GetModel(md.GetModelRequest(name=model.name)), grpc.StatusCode.NOT_FOUND)
    await fails(
        metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name)), grpc.StatusCode.NOT_FOUND
    )
    listed = await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{ns}"))
    assert list(listed.models) == []
    shown = await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{ns}", show_deleted=True))
    assert [m.name for m in shown.models] == [model.name]
    model_id = model.name.rsplit("/", 1)[1]
    reason, _, _ = await fails(
        metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id=model_id)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert reason == "MODEL_DELETED"

    restored = await metadata.UndeleteModel(md.UndeleteModelRequest(name=model.name))
    assert not restored.deleted
    assert (await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))).number == 1
    reason, _, _ = await fails(
        metadata.UndeleteModel(md.UndeleteModelRequest(name=model.name)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "NOT_DELETED"


async def test_create_model_is_idempotent_on_request_id(metadata: MetadataStub) -> None:
    ns, model_id = unique("ns"), unique()
    request = md.CreateModelRequest(parent=f"namespaces/{ns}", model_id=model_id, request_id="req-42")
    first, second = await asyncio.gather(metadata.CreateModel(request), metadata.CreateModel(request))
    assert first.uid == second.uid
    await fails(
        metadata.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{ns}", model_id=model_id, request_id="other")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )


# Versions


async def test_update_version_fields_and_sealed_versions_keep_their_lineage(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await new_version(metadata, model.name, description="v1", tags={"team": "a"})
    params = struct_pb2.Struct()
    params.update({"optimizer": {"lr": 0.01}})
    updated = await metadata.UpdateModelVersion(
        md.UpdateModelVersionRequest(
            model_version=model_pb2.ModelVersion(
                name=version.name,
                params=params,
                lineage=model_pb2.Lineage(source_commit="abc"),
                tags={"team": "b", "data.set": "v2"},
                etag=version.etag,
            ),
            update_mask=mask("params", "lineage", "tags"),
        )
    )
    assert (updated.params, updated.lineage.source_commit, dict(updated.tags)) == (
        params,
        "abc",
        {"team": "b", "data.set": "v2"},
    )
    assert updated.description == "v1"

    for path in ("files", "state", "number", "manifest_digest", "aliases"):
        reason, fields, _ = await fails(
            metadata.UpdateModelVersion(
                md.UpdateModelVersionRequest(
                    model_version=model_pb2.ModelVersion(name=version.name), update_mask=mask(path)
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert (reason, fields) == ("FIELD_OUTPUT_ONLY", ["update_mask"])

    sealed = await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name))
    for path, value in [
        (
            "lineage",
            model_pb2.ModelVersion(name=version.name, lineage=model_pb2.Lineage(source_commit="zzz")),
        ),
        ("params", model_pb2.ModelVersion(name=version.name)),
        ("signature", model_pb2.ModelVersion(name=version.name)),
    ]:
        reason, _, message = await fails(
            metadata.UpdateModelVersion(
                md.UpdateModelVersionRequest(model_version=value, update_mask=mask(path))
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert reason == "VERSION_SEALED"
        assert path in message
    # Description, tags and metrics of a sealed version still change.
    later = await metadata.UpdateModelVersion(
        md.UpdateModelVersionRequest(
            model_version=model_pb2.ModelVersion(
                name=version.name, metrics={"eval.auc": 0.93}, etag=sealed.etag
            ),
            update_mask=mask("metrics"),
        )
    )
    assert dict(later.metrics) == {"eval.auc": 0.93}
    assert later.lineage.source_commit == "abc"
    await fails(
        metadata.UpdateModelVersion(
            md.UpdateModelVersionRequest(
                model_version=model_pb2.ModelVersion(name=version.name, description="x", etag=sealed.etag),
                update_mask=mask("description"),
            )
        ),
        grpc.StatusCode.ABORTED,
    )


async def test_version_lifecycle_archive_delete_restore(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await new_version(metadata, model.name)
    reason, _, _ = await fails(
        metadata.ArchiveModelVersion(md.ArchiveModelVersionRequest(name=version.name)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "VERSION_NOT_READY"
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name))
    archived = await metadata.ArchiveModelVersion(md.ArchiveModelVersionRequest(name=version.name))
    assert archived.state == model_pb2.MODEL_VERSION_STATE_ARCHIVED
    reason, _, _ = await fails(
        metadata.SetAlias(md.SetAliasRequest(name=f"{model.name}/aliases/prod", model_version=version.name)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "VERSION_ARCHIVED"
    ready = await metadata.UnarchiveModelVersion(md.UnarchiveModelVersionRequest(name=version.name))
    assert ready.state == model_pb2.MODEL_VERSION_STATE_READY

    alias = await metadata.SetAlias(
        md.SetAliasRequest(name=f"{model.name}/aliases/prod", model_version=version.name)
    )
    reason, _, _ = await fails(
        metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=version.name)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "VERSION_HAS_ALIASES"
    await metadata.DeleteAlias(md.DeleteAliasRequest(name=alias.name, etag=alias.etag))
    deleted = await metadata.DeleteModelVersion(
        md.DeleteModelVersionRequest(name=version.name), metadata=ACTOR
    )
    assert deleted.deleted
    await fails(
        metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name)), grpc.StatusCode.NOT_FOUND
    )
    assert (
        list(
            (await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name))).model_versions
        )
        == []
    )
    shown = await metadata.ListModelVersions(
        md.ListModelVersionsRequest(parent=model.name, show_deleted=True)
    )
    assert [v.deleted for v in shown.model_versions] == [True]
    # Numbers are never reused: the next version is 2 even though 1 is deleted.
    assert (await new_version(metadata, model.name)).number == 2
    restored = await metadata.UndeleteModelVersion(md.UndeleteModelVersionRequest(name=version.name))
    assert not restored.deleted


async def test_64_concurrent_creates_get_64_distinct_gap_free_numbers(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    versions = await asyncio.gather(*(new_version(metadata, model.name) for _ in range(64)))
    assert sorted(v.number for v in versions) == list(range(1, 65))
    assert len({v.uid for v in versions}) == 64
    assert (await metadata.GetModel(md.GetModelRequest(name=model.name))).latest_version_number == 64


async def test_create_version_is_idempotent_on_request_id_even_concurrently(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    request = md.CreateModelVersionRequest(
        parent=model.name, model_version=model_pb2.ModelVersion(description="once"), request_id="train-run-7"
    )
    results = await asyncio.gather(*(metadata.CreateModelVersion(request) for _ in range(8)))
    assert {v.uid for v in results} == {results[0].uid}
    assert results[0].number == 1
    again = await metadata.CreateModelVersion(request)
    assert again.uid == results[0].uid
    other = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name, request_id="train-run-8")
    )
    assert other.number == 2
    listed = await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name))
    assert [v.number for v in listed.model_versions] == [1, 2]


# Aliases


async def test_concurrent_alias_moves_with_one_etag_one_wins(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    versions = [await new_version(metadata, model.name) for _ in range(3)]
    name = f"{model.name}/aliases/production"
    alias = await metadata.SetAlias(md.SetAliasRequest(name=name, model_version=versions[0].name))

    async def move(target: str) -> str:
        try:
            moved = await metadata.SetAlias(
                md.SetAliasRequest(name=name, model_version=target, etag=alias.etag)
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return f"moved to {moved.version_number}"

    outcomes = await asyncio.gather(*(move(versions[1 + i % 2].name) for i in range(16)))
    winners = [o for o in outcomes if o.startswith("moved")]
    assert len(winners) == 1, outcomes
    assert outcomes.count("ABORTED") == 15
    current = await metadata.GetAlias(md.GetAliasRequest(name=name))
    assert winners == [f"moved to {current.version_number}"]


async def test_no_lost_updates_under_concurrent_tag_writers(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await new_version(metadata, model.name)

    async def add_tag(i: int) -> None:
        while True:  # the read-modify-write loop every well-behaved client runs with etags
            current = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
            tags = {**current.tags, f"k{i}": "v"}
            try:
                await metadata.UpdateModelVersion(
                    md.UpdateModelVersionRequest(
                        model_version=model_pb2.ModelVersion(name=version.name, tags=tags, etag=current.etag),
                        update_mask=mask("tags"),
                    )
                )
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ABORTED:
                    raise

    await asyncio.gather(*(add_tag(i) for i in range(12)))
    final = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert set(final.tags) == {f"k{i}" for i in range(12)}


async def test_list_get_and_delete_aliases(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    v1 = await new_version(metadata, model.name)
    v2 = await new_version(metadata, model.name)
    for alias, target in [("staging", v2), ("production", v1), ("champion", v1)]:
        await metadata.SetAlias(
            md.SetAliasRequest(name=f"{model.name}/aliases/{alias}", model_version=target.name)
        )
    page = await metadata.ListAliases(md.ListAliasesRequest(parent=model.name, page_size=2))
    assert [a.name.rsplit("/", 1)[1] for a in page.aliases] == ["champion", "production"]
    rest = await metadata.ListAliases(
        md.ListAliasesRequest(parent=model.name, page_token=page.next_page_token)
    )
    assert [(a.name.rsplit("/", 1)[1], a.version_number) for a in rest.aliases] == [("staging", 2)]
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=v1.name))
    assert list(fetched.aliases) == ["champion", "production"]

    staging = await metadata.GetAlias(md.GetAliasRequest(name=f"{model.name}/aliases/staging"))
    await fails(
        metadata.DeleteAlias(md.DeleteAliasRequest(name=staging.name, etag="stale")), grpc.StatusCode.ABORTED
    )
    await metadata.DeleteAlias(md.DeleteAliasRequest(name=staging.name, etag=staging.etag))
    await fails(metadata.GetAlias(md.GetAliasRequest(name=staging.name)), grpc.StatusCode.NOT_FOUND)
    await fails(metadata.DeleteAlias(md.DeleteAliasRequest(name=staging.name)), grpc.StatusCode.NOT_FOUND)
    await fails(
        metadata.GetModelVersionByAlias(md.GetModelVersionByAliasRequest(name=staging.name)),
        grpc.StatusCode.NOT_FOUND,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tags": {f"k{i}": "v" for i in range(300)}}, "model_version.tags"),
        ({"tags": {"k" * 300: "v"}}, "model_version.tags"),
        ({"metrics": {"loss": float("inf")}}, "metrics[loss]"),
        ({"metrics": {"": 1.0}}, "metrics"),
        ({"description": "d" * 9000}, "model_version.description"),
        (
            {"lineage": model_pb2.Lineage(parent_model_version="not/a/version")},
            "model_version.lineage.parent_model_version",
        ),
        (
            {"lineage": model_pb2.Lineage(datasets=[model_pb2.Dataset(digest="x")])},
            "model_version.lineage.datasets[0].uri",
        ),
        (
            {"signature": model_pb2.Signature(inputs=[model_pb2.TensorSpec(name="x", shape=[-2])])},
            "model_version.signature.inputs[0].shape",
        ),
    ],
)
async def test_bad_version_fields_are_invalid_argument_naming_the_field(
    metadata: MetadataStub, fields: dict[str, object], field: str
) -> None:
    model = await new_model(metadata)
    _, violations, _ = await fails(
        new_version(metadata, model.name, **fields), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert violations == [field]


async def test_oversized_params_are_refused(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    params = struct_pb2.Struct()
    params.update({f"p{i}": "x" * 100 for i in range(700)})
    _, violations, message = await fails(
        new_version(metadata, model.name, params=params), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert violations == ["model_version.params"]
    assert "bytes as JSON" in message


async def test_numbers_stay_gap_free_when_another_process_took_some(
    metadata: MetadataStub, stack: LocalStack, tmp_path: Path
) -> None:
    """A second metadata process (as with several replicas on MongoDB) allocates numbers too: the
    first process's cached counter lags, its batched insert hits taken numbers, and it moves on."""
    assert stack.metadata is not None
    address = f"127.0.0.1:{free_port()}"
    other = ServiceProcess(
        "metadata-second",
        module="modelreg_metadata",
        service=METADATA_SERVICE,
        address=address,
        env={**stack.metadata.env, "MODELREG_METADATA_ADDR": address, "MODELREG_METADATA_REPLICA": "false"},
        log_dir=tmp_path,
    )
    other.start()
    try:
        other.wait_healthy()
        model = await new_model(metadata, unique("ns"))
        await metadata.GetModel(md.GetModelRequest(name=model.name))  # cached with no versions
        async with authenticated_channel(address) as channel:
            second = metadata_service_pb2_grpc.MetadataServiceStub(channel)
            taken = [await new_version(second, model.name) for _ in range(3)]
            assert [v.number for v in taken] == [1, 2, 3]
            versions = await asyncio.gather(*(new_version(metadata, model.name) for _ in range(5)))
            assert sorted(v.number for v in versions) == [4, 5, 6, 7, 8]
            # Read back from the database (the second process has no replica).
            listed = await second.ListModelVersions(md.ListModelVersionsRequest(parent=model.name))
            assert [v.number for v in listed.model_versions] == list(range(1, 9))
    finally:
        other.stop()


async def test_add_file_checks_the_path_and_the_state(
    metadata: MetadataStub, manifests: ManifestStub
) -> None:
    model = await new_model(metadata)
    version = await new_version(metadata, model.name)
    file = model_pb2.ModelFile(path="weights.bin", size_bytes=3, sha256="a" * 64)
    added = await manifests.AddModelVersionFile(
        mf.AddModelVersionFileRequest(model_version=version.name, file=file)
    )
    assert [f.path for f in added.files] == ["weights.bin"]
    again = await manifests.AddModelVersionFile(
        mf.AddModelVersionFileRequest(model_version=version.name, file=file)
    )
    assert again.etag == added.etag  # the same content again changes nothing
    _, fields, _ = await fails(
        manifests.AddModelVersionFile(
            mf.AddModelVersionFileRequest(
                model_version=version.name,
                file=model_pb2.ModelFile(path="../escape", size_bytes=1, sha256="b" * 64),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert fields == ["file.path"]
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name))
    reason, _, _ = await fails(
        manifests.AddModelVersionFile(
            mf.AddModelVersionFileRequest(
                model_version=version.name,
                file=model_pb2.ModelFile(path="late.bin", size_bytes=1, sha256="c" * 64),
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "VERSION_SEALED"
