"""Protobuf messages <-> domain objects for the metadata service."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from modelreg_api.errors import InvalidArgument
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from modelregistry.v1 import event_pb2, metadata_service_pb2, model_pb2

from modelreg_metadata.audit.events import Event
from modelreg_metadata.domain import (
    Alias,
    AliasProtection,
    ComparedRow,
    Dataset,
    Direction,
    Lineage,
    MetricPoint,
    Model,
    ModelFile,
    ModelVersion,
    Namespace,
    NoRegression,
    ReviewDecision,
    ReviewState,
    Signature,
    TensorSpec,
    VersionDraft,
    VersionState,
)

_STATES = {
    VersionState.PENDING: model_pb2.MODEL_VERSION_STATE_PENDING,
    VersionState.READY: model_pb2.MODEL_VERSION_STATE_READY,
    VersionState.ARCHIVED: model_pb2.MODEL_VERSION_STATE_ARCHIVED,
}
_REVIEW_STATES = {
    ReviewState.NOT_SUBMITTED: model_pb2.MODEL_VERSION_REVIEW_STATE_NOT_SUBMITTED,
    ReviewState.PENDING: model_pb2.MODEL_VERSION_REVIEW_STATE_PENDING,
    ReviewState.APPROVED: model_pb2.MODEL_VERSION_REVIEW_STATE_APPROVED,
    ReviewState.REJECTED: model_pb2.MODEL_VERSION_REVIEW_STATE_REJECTED,
}
_DECISIONS = {
    ReviewDecision.SUBMITTED: model_pb2.REVIEW_DECISION_SUBMITTED,
    ReviewDecision.APPROVED: model_pb2.REVIEW_DECISION_APPROVED,
    ReviewDecision.REJECTED: model_pb2.REVIEW_DECISION_REJECTED,
}
_DIRECTIONS = {
    Direction.MAXIMIZE: model_pb2.METRIC_DIRECTION_MAXIMIZE,
    Direction.MINIMIZE: model_pb2.METRIC_DIRECTION_MINIMIZE,
}


def _timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def model_to_proto(model: Model) -> model_pb2.Model:
    return model_pb2.Model(
        name=str(model.name),
        uid=model.uid,
        display_name=model.display_name,
        description=model.description,
        model_card=model.model_card,
        owner=model.owner,
        labels=model.labels,
        create_time=_timestamp(model.create_time),
        update_time=_timestamp(model.update_time),
        etag=model.etag,
        create_actor=model.create_actor,
        latest_version_number=model.latest_version_number,
        deleted=model.deleted,
    )


def model_draft(name: ModelName, message: model_pb2.Model) -> Model:
    """The caller-settable fields of a model (and its etag); output-only fields are ignored."""
    return Model(
        name=name,
        uid="",
        display_name=message.display_name,
        description=message.description,
        model_card=message.model_card,
        owner=message.owner,
        labels=dict(message.labels),
        etag=message.etag,
    )


def file_to_proto(file: ModelFile) -> model_pb2.ModelFile:
    return model_pb2.ModelFile(
        path=file.path,
        size_bytes=file.size_bytes,
        sha256=file.sha256,
        content_type=file.content_type,
        create_time=_timestamp(file.create_time),
    )


def file_from_proto(message: model_pb2.ModelFile) -> ModelFile:
    return ModelFile(
        path=message.path,
        size_bytes=message.size_bytes,
        sha256=message.sha256,
        content_type=message.content_type,
    )


def _lineage_to_proto(lineage: Lineage) -> model_pb2.Lineage:
    return model_pb2.Lineage(
        training_run_id=lineage.training_run_id,
        training_run_url=lineage.training_run_url,
        source_repository=lineage.source_repository,
        source_commit=lineage.source_commit,
        datasets=[model_pb2.Dataset(uri=d.uri, digest=d.digest, role=d.role) for d in lineage.datasets],
        parent_model_version=lineage.parent_model_version,
    )


def _lineage_from_proto(message: model_pb2.Lineage) -> Lineage:
    return Lineage(
        training_run_id=message.training_run_id,
        training_run_url=message.training_run_url,
        source_repository=message.source_repository,
        source_commit=message.source_commit,
        datasets=[Dataset(d.uri, d.digest, d.role) for d in message.datasets],
        parent_model_version=message.parent_model_version,
    )


def _tensors_to_proto(tensors: list[TensorSpec]) -> list[model_pb2.TensorSpec]:
    return [model_pb2.TensorSpec(name=t.name, dtype=t.dtype, shape=t.shape) for t in tensors]


def _tensors_from_proto(messages: list[model_pb2.TensorSpec]) -> list[TensorSpec]:
    return [TensorSpec(m.name, m.dtype, list(m.shape)) for m in messages]


class _Built:
    """Messages already built for domain objects, by identity.

    Versions are frozen (domain.py: a change makes a new one with `dataclasses.replace`; the entry
    holds the version, so its id stays its own), and the store's replica hands out the same object
    for an unchanged version, so a version that many searches return is converted once. Bounded
    in entries and in message size (versions with large manifests are rebuilt each time), oldest
    first out.
    """

    def __init__(self, capacity: int, max_message_bytes: int):
        self._capacity = capacity
        self._max_message_bytes = max_message_bytes
        self._messages: OrderedDict[int, tuple[ModelVersion, model_pb2.ModelVersion]] = OrderedDict()

    def get(self, version: ModelVersion) -> model_pb2.ModelVersion | None:
        entry = self._messages.get(id(version))
        if entry is None or entry[0] is not version:
            return None
        return entry[1]

    def put(self, version: ModelVersion, message: model_pb2.ModelVersion) -> None:
        if message.ByteSize() > self._max_message_bytes:
            return
        self._messages[id(version)] = (version, message)  # holding `version` keeps its id unique
        if len(self._messages) > self._capacity:
            self._messages.popitem(last=False)


_built_versions = _Built(capacity=4096, max_message_bytes=32 * 1024)


def version_to_proto(version: ModelVersion) -> model_pb2.ModelVersion:
    message = _built_versions.get(version)
    if message is None:
        message = _build_version(version)
        _built_versions.put(version, message)
    return message


def _build_version(version: ModelVersion) -> model_pb2.ModelVersion:
    params = struct_pb2.Struct()
    params.update(version.params)
    return model_pb2.ModelVersion(
        name=str(version.name),
        uid=version.uid,
        number=version.number,
        description=version.description,
        tags=version.tags,
        params=params,
        metrics=version.metrics,
        lineage=_lineage_to_proto(version.lineage),
        signature=model_pb2.Signature(
            inputs=_tensors_to_proto(version.signature.inputs),
            outputs=_tensors_to_proto(version.signature.outputs),
        ),
        files=[file_to_proto(f) for f in version.files],
        manifest_digest=version.manifest_digest,
        state=_STATES[version.state],
        create_actor=version.create_actor,
        create_time=_timestamp(version.create_time),
        update_time=_timestamp(version.update_time),
        etag=version.etag,
        aliases=version.aliases,
        deleted=version.deleted,
        review_state=_REVIEW_STATES[version.review_state],
        reviews=[
            model_pb2.Review(
                decision=_DECISIONS[r.decision], actor=r.actor, time=_timestamp(r.time), comment=r.comment
            )
            for r in version.reviews
        ],
    )


def params_from_proto(params: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain values, whatever numbers it holds: NaN and infinities are refused by
    `domain.check_params`, naming where they are (json_format refuses them with a ValueError)."""
    return {key: _plain(value) for key, value in params.fields.items()}


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return params_from_proto(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set


def new_version(message: model_pb2.ModelVersion) -> VersionDraft:
    """The caller-settable fields of a version to create; output-only fields are ignored."""
    return VersionDraft(
        description=message.description,
        tags=dict(message.tags),
        params=params_from_proto(message.params),
        metrics=dict(message.metrics),
        lineage=_lineage_from_proto(message.lineage),
        signature=Signature(
            _tensors_from_proto(list(message.signature.inputs)),
            _tensors_from_proto(list(message.signature.outputs)),
        ),
    )


def version_draft(name: ModelVersionName, message: model_pb2.ModelVersion) -> ModelVersion:
    """The caller-settable fields of a version to update (and its etag); output-only fields are
    ignored."""
    settable = new_version(message)
    return ModelVersion(
        name=name,
        uid="",
        model_uid="",
        description=settable.description,
        tags=settable.tags,
        params=settable.params,
        metrics=settable.metrics,
        lineage=settable.lineage,
        signature=settable.signature,
        etag=message.etag,
    )


def alias_to_proto(alias: Alias) -> model_pb2.Alias:
    return model_pb2.Alias(
        name=str(alias.name),
        model_version=str(alias.model_version),
        version_number=alias.version_number,
        update_time=_timestamp(alias.update_time),
        update_actor=alias.update_actor,
        etag=alias.etag,
        protection=protection_to_proto(alias.protection) if alias.protection else None,
    )


def protection_to_proto(protection: AliasProtection) -> model_pb2.AliasProtection:
    return model_pb2.AliasProtection(
        name=str(protection.name),
        metric_gate=protection.metric_gate,
        no_regression=[
            model_pb2.NoRegression(metric=r.metric, direction=_DIRECTIONS[r.direction])
            for r in protection.no_regression
        ],
        update_time=_timestamp(protection.update_time),
        update_actor=protection.update_actor,
    )


def protection_from_proto(name: AliasName, message: model_pb2.AliasProtection) -> AliasProtection:
    directions = {proto: domain for domain, proto in _DIRECTIONS.items()}
    rules = []
    for i, rule in enumerate(message.no_regression):
        direction = directions.get(rule.direction)
        if direction is None:
            raise InvalidArgument(
                f"protection.no_regression[{i}].direction", "must be METRIC_DIRECTION_MAXIMIZE or _MINIMIZE"
            )
        rules.append(NoRegression(rule.metric, direction))
    return AliasProtection(name=name, metric_gate=message.metric_gate, no_regression=tuple(rules))


def event_to_proto(event: Event) -> event_pb2.Event:
    before, after = struct_pb2.Struct(), struct_pb2.Struct()
    before.update(event.before)
    after.update(event.after)
    return event_pb2.Event(
        sequence=event.sequence,
        id=event.id,
        time=_timestamp(event.time),
        actor=event.actor,
        request_id=event.request_id,
        resource=event.resource,
        action=event.action,
        before=before,
        after=after,
        authentication=event.authentication,
        via=event.via,
    )


# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_MAX_NANOS = 999_999_999


def time_from_proto(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A request's timestamp, refused (naming `field`) outside the range a Timestamp may hold."""
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS or not 0 <= stamp.nanos <= _MAX_NANOS:
        raise InvalidArgument(
            field,
            f"seconds={stamp.seconds} nanos={stamp.nanos} is not a valid timestamp "
            "(0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, nanos 0-999999999)",
            reason="TIMESTAMP_OUT_OF_RANGE",
        )
    return stamp.ToDatetime(tzinfo=UTC)


def populated_fields(message: Message) -> list[str]:
    """The top-level fields set in a message: the implied update mask of an empty one (AIP-134)."""
    return [descriptor.name for descriptor, _ in message.ListFields()]


def namespace_to_proto(namespace: Namespace) -> model_pb2.Namespace:
    return model_pb2.Namespace(
        name=str(namespace.name),
        uid=namespace.uid,
        display_name=namespace.display_name,
        description=namespace.description,
        labels=namespace.labels,
        create_time=_timestamp(namespace.create_time),
        update_time=_timestamp(namespace.update_time),
        etag=namespace.etag,
        create_actor=namespace.create_actor,
        allow_self_approval=namespace.allow_self_approval,
    )


def namespace_draft(name: NamespaceName, message: model_pb2.Namespace) -> Namespace:
    return Namespace(
        name=name,
        uid="",
        display_name=message.display_name,
        description=message.description,
        labels=dict(message.labels),
        etag=message.etag,
        allow_self_approval=message.allow_self_approval,
    )


def point_from_proto(message: model_pb2.MetricPoint, field: str) -> MetricPoint:
    return MetricPoint(
        key=message.key,
        value=message.value,
        step=message.step,
        time=time_from_proto(message.time, f"{field}.time") if message.HasField("time") else None,
        dataset=message.dataset,
        slice=message.slice,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def point_to_proto(point: MetricPoint) -> model_pb2.MetricPoint:
    # A history page is up to 10,000 of these: the timestamp is built from its two fields
    # (Timestamp.FromDatetime costs about twice as much).
    stamp = None
    if point.time is not None:
        since = point.time - _EPOCH if point.time.tzinfo else point.time.replace(tzinfo=UTC) - _EPOCH
        stamp = timestamp_pb2.Timestamp(
            seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
        )
    return model_pb2.MetricPoint(
        key=point.key,
        value=point.value,
        step=point.step,
        time=stamp,
        dataset=point.dataset,
        slice=point.slice,
    )


def _value(value: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float):
        out.number_value = value
    elif isinstance(value, str):
        out.string_value = value
    else:
        out.list_value.extend(value)
    return out


def rows_to_proto(rows: list[ComparedRow]) -> list[metadata_service_pb2.ComparedRow]:
    return [
        metadata_service_pb2.ComparedRow(
            key=row.key, values=[_value(v) for v in row.values], differs=row.differs
        )
        for row in rows
    ]
