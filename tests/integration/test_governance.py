"""Reviews, the four-eyes rule, protected aliases and their metric gates, through gRPC."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.support import as_actor, error_info, error_metadata, events_when, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")
BOB = as_actor("user:bob@example.com")
CAROL = as_actor("user:carol@example.com")
PENDING = model_pb2.MODEL_VERSION_REVIEW_STATE_PENDING
APPROVED = model_pb2.MODEL_VERSION_REVIEW_STATE_APPROVED
REJECTED = model_pb2.MODEL_VERSION_REVIEW_STATE_REJECTED


async def refused(call: object, code: grpc.StatusCode) -> tuple[str, dict[str, str], str]:
    """Awaits `call`, expecting `code`; returns the ErrorInfo reason, its metadata and the message."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    reason, _ = error_info(caught.value)
    return reason, error_metadata(caught.value), caught.value.details() or ""


async def new_model(metadata: MetadataStub, namespace: str = "") -> str:
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{namespace or unique('gov')}", model_id=unique()),
        metadata=ALICE,
    )
    return model.name


async def ready_version(
    metadata: MetadataStub, model: str, metrics: dict[str, float] | None = None, *, approve: bool = True
) -> model_pb2.ModelVersion:
    """A sealed version created by alice, approved by bob unless `approve` is false."""
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(
            parent=model, model_version=model_pb2.ModelVersion(metrics=metrics or {})
        ),
        metadata=ALICE,
    )
    version = await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ALICE)
    if approve:
        await metadata.SubmitModelVersionForReview(
            md.SubmitModelVersionForReviewRequest(name=version.name), metadata=ALICE
        )
        version = await metadata.ApproveModelVersion(
            md.ApproveModelVersionRequest(name=version.name), metadata=BOB
        )
    return version


def alias_of(model: str, alias: str = "production") -> str:
    return f"{model}/aliases/{alias}"


async def protect(metadata: MetadataStub, alias: str, gate: str = "", **no_regression: str) -> None:
    directions = {"max": model_pb2.METRIC_DIRECTION_MAXIMIZE, "min": model_pb2.METRIC_DIRECTION_MINIMIZE}
    await metadata.ProtectAlias(
        md.ProtectAliasRequest(
            protection=model_pb2.AliasProtection(
                name=alias,
                metric_gate=gate,
                no_regression=[
                    model_pb2.NoRegression(metric=metric, direction=directions[way])
                    for metric, way in no_regression.items()
                ],
            )
        ),
        metadata=CAROL,
    )


def set_alias(metadata: MetadataStub, alias: str, version: str) -> Awaitable[model_pb2.Alias]:
    return metadata.SetAlias(md.SetAliasRequest(name=alias, model_version=version), metadata=CAROL)


# Review and approval


async def test_review_flow_keeps_every_step_with_actor_time_and_comment(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await ready_version(metadata, model, approve=False)
    assert version.review_state == model_pb2.MODEL_VERSION_REVIEW_STATE_NOT_SUBMITTED
    name = version.name

    submitted = await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=name, comment="please look at the eval"), metadata=ALICE
    )
    assert submitted.review_state == PENDING
    rejected = await metadata.RejectModelVersion(
        md.RejectModelVersionRequest(name=name, comment="eval set is stale"), metadata=BOB
    )
    assert rejected.review_state == REJECTED
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=name, comment="re-evaluated"), metadata=ALICE
    )
    approved = await metadata.ApproveModelVersion(
        md.ApproveModelVersionRequest(name=name, comment="lgtm"), metadata=CAROL
    )
    assert approved.review_state == APPROVED

    stored = await metadata.GetModelVersion(md.GetModelVersionRequest(name=name))
    steps = [(r.decision, r.actor, r.comment) for r in stored.reviews]
    assert steps == [
        (model_pb2.REVIEW_DECISION_SUBMITTED, "user:alice@example.com", "please look at the eval"),
        (model_pb2.REVIEW_DECISION_REJECTED, "user:bob@example.com", "eval set is stale"),
        (model_pb2.REVIEW_DECISION_SUBMITTED, "user:alice@example.com", "re-evaluated"),
        (model_pb2.REVIEW_DECISION_APPROVED, "user:carol@example.com", "lgtm"),
    ]
    times = [r.time.ToDatetime() for r in stored.reviews]
    assert times == sorted(times)
    assert all(t.year >= 2024 for t in times)


async def test_review_steps_out_of_order_are_refused(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await ready_version(metadata, model, approve=False)
    reason, _, _ = await refused(
        metadata.ApproveModelVersion(md.ApproveModelVersionRequest(name=version.name), metadata=BOB),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "REVIEW_NOT_PENDING"
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=version.name), metadata=ALICE
    )
    reason, _, _ = await refused(
        metadata.SubmitModelVersionForReview(
            md.SubmitModelVersionForReviewRequest(name=version.name), metadata=ALICE
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "REVIEW_ALREADY_PENDING"
    await metadata.ApproveModelVersion(md.ApproveModelVersionRequest(name=version.name), metadata=BOB)
    reason, _, _ = await refused(
        metadata.RejectModelVersion(md.RejectModelVersionRequest(name=version.name), metadata=BOB),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "REVIEW_NOT_PENDING"
    _, fields = error_info(
        await _caught(
            metadata.ApproveModelVersion(
                md.ApproveModelVersionRequest(name=version.name, comment="x" * 3000), metadata=BOB
            )
        )
    )
    assert fields == ["comment"]


async def _caught(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_only_ready_versions_can_be_approved(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    version = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model), metadata=ALICE)
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=version.name), metadata=ALICE
    )
    reason, info, message = await refused(
        metadata.ApproveModelVersion(md.ApproveModelVersionRequest(name=version.name), metadata=BOB),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (reason, info["state"]) == ("VERSION_NOT_READY", "PENDING")
    assert "only a READY" in message
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ALICE)
    approved = await metadata.ApproveModelVersion(
        md.ApproveModelVersionRequest(name=version.name), metadata=BOB
    )
    assert approved.review_state == APPROVED


async def test_four_eyes_the_creator_cannot_approve_unless_the_namespace_allows_it(
    metadata: MetadataStub,
) -> None:
    namespace = unique("ns")
    model = await new_model(metadata, namespace)
    version = await ready_version(metadata, model, approve=False)
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=version.name), metadata=ALICE
    )

    reason, info, message = await refused(
        metadata.ApproveModelVersion(md.ApproveModelVersionRequest(name=version.name), metadata=ALICE),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert reason == "SELF_APPROVAL_NOT_ALLOWED"
    assert info == {"actor": "user:alice@example.com", "create_actor": "user:alice@example.com"}
    assert "four eyes" in message

    updated = await metadata.UpdateNamespace(
        md.UpdateNamespaceRequest(
            namespace=model_pb2.Namespace(name=f"namespaces/{namespace}", allow_self_approval=True),
            update_mask=field_mask_pb2.FieldMask(paths=["allow_self_approval"]),
        ),
        metadata=CAROL,
    )
    assert updated.allow_self_approval
    approved = await metadata.ApproveModelVersion(
        md.ApproveModelVersionRequest(name=version.name), metadata=ALICE
    )
    assert approved.reviews[-1].actor == "user:alice@example.com"
    assert approved.review_state == APPROVED


# Protected aliases and metric gates


async def test_every_gate_outcome_with_the_condition_and_the_values_compared(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    production = alias_of(model)
    await protect(metadata, production, "metrics.accuracy >= 0.9", latency_ms="min", accuracy="max")
    protection = await metadata.GetAliasProtection(md.GetAliasProtectionRequest(name=production))
    assert (protection.metric_gate, protection.update_actor) == (
        "metrics.accuracy >= 0.9",
        "user:carol@example.com",
    )

    first = await ready_version(metadata, model, {"accuracy": 0.92, "latency_ms": 10})
    moved = await set_alias(metadata, production, first.name)  # pass: nothing to compare with yet
    assert moved.protection.metric_gate == "metrics.accuracy >= 0.9"

    below = await ready_version(metadata, model, {"accuracy": 0.85, "latency_ms": 5})
    reason, info, message = await refused(
        set_alias(metadata, production, below.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "METRIC_GATE_FAILED"
    assert (info["condition"], info["metric"], info["candidate_value"]) == (
        "metrics.accuracy >= 0.9",
        "accuracy",
        "0.85",
    )
    assert "metrics.accuracy >= 0.9" in message
    assert "0.85" in message

    slower = await ready_version(metadata, model, {"accuracy": 0.95, "latency_ms": 12})
    reason, info, message = await refused(
        set_alias(metadata, production, slower.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "METRIC_REGRESSION"
    assert info == {
        "alias": production,
        "model_version": slower.name,
        "metric": "latency_ms",
        "direction": "MINIMIZE",
        "candidate_value": "12",
        "current_value": "10",
        "current_model_version": first.name,
    }
    assert "12 vs 10" in message

    less_accurate = await ready_version(metadata, model, {"accuracy": 0.91, "latency_ms": 9})
    reason, info, _ = await refused(
        set_alias(metadata, production, less_accurate.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (reason, info["metric"], info["candidate_value"], info["current_value"]) == (
        "METRIC_REGRESSION",
        "accuracy",
        "0.91",
        "0.92",
    )

    unmeasured = await ready_version(metadata, model, {"latency_ms": 3})
    reason, info, message = await refused(
        set_alias(metadata, production, unmeasured.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (reason, info["metric"], info["condition"]) == (
        "METRIC_MISSING",
        "accuracy",
        "metrics.accuracy >= 0.9",
    )
    assert "no metric 'accuracy'" in message

    better = await ready_version(metadata, model, {"accuracy": 0.95, "latency_ms": 9})
    moved = await set_alias(metadata, production, better.name)
    assert moved.version_number == better.number

    # The refused moves left the alias alone and wrote no events: two moves, two events.
    alias = await metadata.GetAlias(md.GetAliasRequest(name=production))
    assert alias.version_number == better.number
    events = await events_when(metadata, 2, resource=production, actions=["ALIAS_CREATED", "ALIAS_MOVED"])
    assert [(e.action, e.after["version_number"]) for e in events] == [
        ("ALIAS_CREATED", first.number),
        ("ALIAS_MOVED", better.number),
    ]


async def test_a_protected_alias_points_only_at_approved_ready_versions(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    production = alias_of(model)
    await protect(metadata, production)
    pending = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model), metadata=ALICE)
    reason, info, _ = await refused(
        set_alias(metadata, production, pending.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (reason, info["state"]) == ("PROTECTED_ALIAS_VERSION_NOT_READY", "PENDING")

    unapproved = await ready_version(metadata, model, approve=False)
    reason, info, message = await refused(
        set_alias(metadata, production, unapproved.name), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (reason, info["review_state"]) == ("PROTECTED_ALIAS_VERSION_NOT_APPROVED", "NOT_SUBMITTED")
    assert "alias production is protected" in message

    # An unprotected alias of the same model is not governed.
    staging = await set_alias(metadata, alias_of(model, "staging"), unapproved.name)
    assert not staging.HasField("protection")

    approved = await ready_version(metadata, model)
    await set_alias(metadata, production, approved.name)

    # The version a protected alias serves cannot be archived; the alias cannot be deleted.
    reason, info, _ = await refused(
        metadata.ArchiveModelVersion(md.ArchiveModelVersionRequest(name=approved.name), metadata=ALICE),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (reason, info["aliases"]) == ("VERSION_SERVES_PROTECTED_ALIAS", "production")
    reason, _, _ = await refused(
        metadata.DeleteAlias(md.DeleteAliasRequest(name=production), metadata=ALICE),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "ALIAS_PROTECTED"

    # Unprotected, both are allowed again.
    await metadata.UnprotectAlias(md.UnprotectAliasRequest(name=production), metadata=CAROL)
    await set_alias(metadata, production, unapproved.name)
    archived = await metadata.ArchiveModelVersion(
        md.ArchiveModelVersionRequest(name=approved.name), metadata=ALICE
    )
    assert archived.state == model_pb2.MODEL_VERSION_STATE_ARCHIVED
    await metadata.DeleteAlias(md.DeleteAliasRequest(name=production), metadata=ALICE)
    reason, _, _ = await refused(
        metadata.GetAliasProtection(md.GetAliasProtectionRequest(name=production)), grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    ("gate", "field"),
    [
        ("tags.team = 'a'", "protection.metric_gate"),
        ("metrics.accuracy >= 'high'", "protection.metric_gate"),
        ("metrics.accuracy >=", "protection.metric_gate"),
        ("metrics.name STARTS_WITH 'x'", "protection.metric_gate"),
    ],
)
async def test_invalid_gates_are_refused_naming_the_field(
    metadata: MetadataStub, gate: str, field: str
) -> None:
    model = await new_model(metadata)
    exc = await _caught(
        metadata.ProtectAlias(
            md.ProtectAliasRequest(
                protection=model_pb2.AliasProtection(name=alias_of(model), metric_gate=gate)
            ),
            metadata=CAROL,
        )
    )
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(exc)[1] == [field]


async def test_no_regression_needs_a_direction(metadata: MetadataStub) -> None:
    model = await new_model(metadata)
    exc = await _caught(
        metadata.ProtectAlias(
            md.ProtectAliasRequest(
                protection=model_pb2.AliasProtection(
                    name=alias_of(model), no_regression=[model_pb2.NoRegression(metric="accuracy")]
                )
            ),
            metadata=CAROL,
        )
    )
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(exc)[1] == ["protection.no_regression[0].direction"]
