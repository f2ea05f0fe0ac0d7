"""Domain objects <-> MongoDB documents.

Keys. Every document's `_id` is its natural key (`{namespace}`, `{namespace}/{model}`,
`{namespace}/{model}/{number}`), so every point read and every write is by `_id`: the one access
path FerretDB v1 serves without scanning the collection, and MongoDB's clustered primary key.

User-chosen keys (tags, labels, metrics, param paths) may contain `.`, start with `$`, or hold any
unicode, which MongoDB field names (and FerretDB) do not allow. They are kept twice:
- as arrays of `{k, v}` pairs, the faithful copy the API returns;
- as a queryable map whose field names are the hex of the key's UTF-8 bytes (`k` + hex), so the
  filter compiler addresses `metrics.accuracy` as `m.k6163637572616379` and MongoDB can compare,
  sort and (wildcard-)index it. User text is never a field name, only hex of it.
Params are nested user data: the canonical JSON text is the faithful copy; the queryable map `p`
holds every scalar (or list of scalars) under its path, a JSON array of the path's segments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from modelreg_api.names import AliasName, ModelName, NamespaceName

from modelreg_metadata.domain import (
    Alias,
    AliasProtection,
    Dataset,
    Direction,
    Lineage,
    Model,
    ModelFile,
    ModelVersion,
    Namespace,
    NoRegression,
    Review,
    ReviewDecision,
    ReviewState,
    Signature,
    TensorSpec,
    VersionState,
    flatten_params,
)

Document = dict[str, Any]

# FerretDB 1.24 never answers an `update` command carrying 100 or more updates (measured: 99
# return, 100 hang, with or without the write-lock wrapper, and every later write waits behind
# it), so bulk updates are cut into commands of at most this many.
MAX_UPDATES_PER_COMMAND = 64


def namespace_key(namespace: str) -> str:
    return namespace


def model_key(name: ModelName) -> str:
    return f"{name.namespace}/{name.model}"


def version_key(model: ModelName, number: int) -> str:
    return f"{model.namespace}/{model.model}/{number}"


def encode_key(key: str) -> str:
    """A field name for a user key: `k` + hex of its UTF-8 bytes (never `.`, `$` or empty)."""
    return "k" + key.encode().hex()


def encode_path(segments: tuple[str, ...]) -> str:
    return encode_key(json.dumps(list(segments), ensure_ascii=False, separators=(",", ":")))


def pairs(values: dict[str, Any]) -> list[Document]:
    return [{"k": key, "v": value} for key, value in sorted(values.items())]


def unpairs(items: list[Document] | None) -> dict[str, Any]:
    return {item["k"]: item["v"] for item in items or []}


def encoded_map(values: dict[str, Any]) -> Document:
    return {encode_key(key): value for key, value in values.items()}


def params_map(params: dict[str, Any]) -> Document:
    return {encode_path(path): value for path, value in flatten_params(params).items()}


def namespace_document(namespace: Namespace) -> Document:
    return {
        "_id": namespace_key(namespace.name.namespace),
        "uid": namespace.uid,
        "display_name": namespace.display_name,
        "description": namespace.description,
        "labels": pairs(namespace.labels),
        "create_time": namespace.create_time,
        "update_time": namespace.update_time,
        "etag": namespace.etag,
        "create_actor": namespace.create_actor,
        "allow_self_approval": namespace.allow_self_approval,
        "revision": 0,
    }


def namespace_from(doc: Document) -> Namespace:
    return Namespace(
        name=NamespaceName(doc["_id"]),
        uid=doc["uid"],
        display_name=doc.get("display_name", ""),
        description=doc.get("description", ""),
        labels=unpairs(doc.get("labels")),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        etag=doc.get("etag", ""),
        create_actor=doc.get("create_actor", ""),
        allow_self_approval=doc.get("allow_self_approval", False),
    )


def namespace_fields(namespace: Namespace) -> Document:
    """The fields an update may change."""
    return {
        "display_name": namespace.display_name,
        "description": namespace.description,
        "labels": pairs(namespace.labels),
        "allow_self_approval": namespace.allow_self_approval,
        "update_time": namespace.update_time,
        "etag": namespace.etag,
    }


def model_fields(model: Model) -> Document:
    """Every field of a model except its identity, aliases and version counter."""
    return {
        "display_name": model.display_name,
        "description": model.description,
        "model_card": model.model_card,
        "owner": model.owner,
        "labels": pairs(model.labels),
        "l": encoded_map(model.labels),
        "update_time": model.update_time,
        "etag": model.etag,
        "deleted": model.deleted,
    }


def model_document(model: Model, request_key: str) -> Document:
    return {
        "_id": model_key(model.name),
        "uid": model.uid,
        "namespace": model.name.namespace,
        "model_id": model.name.model,
        **model_fields(model),
        "create_time": model.create_time,
        "create_actor": model.create_actor,
        "latest_version_number": model.latest_version_number,
        "aliases": [],
        "request_key": request_key,
        "revision": 0,
    }


def model_from(doc: Document) -> Model:
    return Model(
        name=ModelName(doc["namespace"], doc["model_id"]),
        uid=doc["uid"],
        display_name=doc.get("display_name", ""),
        description=doc.get("description", ""),
        model_card=doc.get("model_card", ""),
        owner=doc.get("owner", ""),
        labels=unpairs(doc.get("labels")),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        etag=doc.get("etag", ""),
        create_actor=doc.get("create_actor", ""),
        latest_version_number=doc.get("latest_version_number", 0),
        deleted=doc.get("deleted", False),
    )


def alias_entry(alias: Alias) -> Document:
    return {
        "alias": alias.name.alias,
        "version_number": alias.version_number,
        "update_time": alias.update_time,
        "update_actor": alias.update_actor,
        "etag": alias.etag,
    }


def protection_entry(protection: AliasProtection) -> Document:
    return {
        "alias": protection.name.alias,
        "metric_gate": protection.metric_gate,
        "no_regression": [
            {"metric": r.metric, "direction": r.direction.value} for r in protection.no_regression
        ],
        "update_time": protection.update_time,
        "update_actor": protection.update_actor,
    }


def protections_from(model_doc: Document) -> dict[str, AliasProtection]:
    """The model's protected aliases by alias id (an alias may be protected before it exists)."""
    name = ModelName(model_doc["namespace"], model_doc["model_id"])
    return {
        entry["alias"]: AliasProtection(
            name=name.alias(entry["alias"]),
            metric_gate=entry.get("metric_gate", ""),
            no_regression=tuple(
                NoRegression(r["metric"], Direction(r["direction"])) for r in entry.get("no_regression", [])
            ),
            update_time=entry.get("update_time"),
            update_actor=entry.get("update_actor", ""),
        )
        for entry in model_doc.get("alias_protections", [])
    }


def aliases_from(model_doc: Document) -> list[Alias]:
    name = ModelName(model_doc["namespace"], model_doc["model_id"])
    protections = protections_from(model_doc)
    return [
        Alias(
            name=AliasName(name.namespace, name.model, entry["alias"]),
            version_number=entry["version_number"],
            update_time=entry.get("update_time"),
            update_actor=entry.get("update_actor", ""),
            etag=entry.get("etag", ""),
            protection=protections.get(entry["alias"]),
        )
        for entry in model_doc.get("aliases", [])
    ]


def aliases_of_version(model_doc: Document, number: int) -> list[str]:
    return sorted(e["alias"] for e in model_doc.get("aliases", []) if e["version_number"] == number)


def file_document(file: ModelFile) -> Document:
    return {
        "path": file.path,
        "size_bytes": file.size_bytes,
        "sha256": file.sha256,
        "content_type": file.content_type,
        "create_time": file.create_time,
    }


def file_from(doc: Document) -> ModelFile:
    return ModelFile(
        path=doc["path"],
        size_bytes=doc["size_bytes"],
        sha256=doc["sha256"],
        content_type=doc.get("content_type", ""),
        create_time=doc.get("create_time"),
    )


def lineage_document(lineage: Lineage) -> Document:
    return {
        "training_run_id": lineage.training_run_id,
        "training_run_url": lineage.training_run_url,
        "source_repository": lineage.source_repository,
        "source_commit": lineage.source_commit,
        "datasets": [{"uri": d.uri, "digest": d.digest, "role": d.role} for d in lineage.datasets],
        "parent_model_version": lineage.parent_model_version,
    }


def _lineage_from(doc: Document | None) -> Lineage:
    doc = doc or {}
    return Lineage(
        training_run_id=doc.get("training_run_id", ""),
        training_run_url=doc.get("training_run_url", ""),
        source_repository=doc.get("source_repository", ""),
        source_commit=doc.get("source_commit", ""),
        datasets=[Dataset(d["uri"], d.get("digest", ""), d.get("role", "")) for d in doc.get("datasets", [])],
        parent_model_version=doc.get("parent_model_version", ""),
    )


def _tensors_document(tensors: list[TensorSpec]) -> list[Document]:
    return [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in tensors]


def _tensors_from(docs: list[Document] | None) -> list[TensorSpec]:
    return [TensorSpec(d["name"], d.get("dtype", ""), list(d.get("shape", []))) for d in docs or []]


def signature_document(signature: Signature) -> Document:
    return {"inputs": _tensors_document(signature.inputs), "outputs": _tensors_document(signature.outputs)}


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def version_fields(version: ModelVersion) -> Document:
    """Every field of a version except its identity: what an update may rewrite."""
    return {
        "description": version.description,
        "tags": pairs(version.tags),
        "t": encoded_map(version.tags),
        "params_json": canonical_params(version.params),
        "p": params_map(version.params),
        "metrics": pairs(version.metrics),
        "m": encoded_map(version.metrics),
        "lineage": lineage_document(version.lineage),
        "signature": signature_document(version.signature),
        "files": [file_document(f) for f in version.files],
        "manifest_digest": version.manifest_digest,
        "state": version.state.value,
        "update_time": version.update_time,
        "etag": version.etag,
        "deleted": version.deleted,
        "review_state": version.review_state.value,
        "reviews": [review_document(r) for r in version.reviews],
    }


def review_document(review: Review) -> Document:
    return {
        "decision": review.decision.value,
        "actor": review.actor,
        "time": review.time,
        "comment": review.comment,
    }


def version_document(version: ModelVersion, request_key: str) -> Document:
    return {
        "_id": version_key(version.name.model_name, version.number),
        "uid": version.uid,
        "model_uid": version.model_uid,
        "namespace": version.name.namespace,
        "model_id": version.name.model,
        "number": version.number,
        **version_fields(version),
        "create_actor": version.create_actor,
        "create_time": version.create_time,
        "metric_meta": [],
        "request_key": request_key,
        "revision": 0,
    }


def version_from(doc: Document, aliases: list[str] | None = None) -> ModelVersion:
    signature = doc.get("signature") or {}
    return ModelVersion(
        name=ModelName(doc["namespace"], doc["model_id"]).version(doc["number"]),
        uid=doc["uid"],
        model_uid=doc["model_uid"],
        description=doc.get("description", ""),
        tags=unpairs(doc.get("tags")),
        params=json.loads(doc.get("params_json") or "{}"),
        metrics=unpairs(doc.get("metrics")),
        lineage=_lineage_from(doc.get("lineage")),
        signature=Signature(_tensors_from(signature.get("inputs")), _tensors_from(signature.get("outputs"))),
        files=sorted((file_from(f) for f in doc.get("files", [])), key=lambda f: f.path),
        manifest_digest=doc.get("manifest_digest", ""),
        state=VersionState(doc.get("state", VersionState.PENDING.value)),
        create_actor=doc.get("create_actor", ""),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        etag=doc.get("etag", ""),
        aliases=sorted(aliases or []),
        deleted=doc.get("deleted", False),
        review_state=ReviewState(doc.get("review_state", ReviewState.NOT_SUBMITTED.value)),
        reviews=[
            Review(ReviewDecision(r["decision"]), r.get("actor", ""), r.get("time"), r.get("comment", ""))
            for r in doc.get("reviews", [])
        ],
    )


def without_outbox(doc: Document) -> Document:
    # Outbox entries are in flight to the event trail (audit/outbox.py), not part of the resource.
    return {k: v for k, v in doc.items() if k != "outbox"} if "outbox" in doc else doc


def merged(doc: Document, changes: Document, removed: Iterable[str] = ()) -> Document:
    """The document after `$set: changes`, `$unset: removed` and `$inc: {revision: 1}` (outbox
    entries aside)."""
    gone = set(removed)
    result = {k: v for k, v in {**doc, **changes}.items() if k not in gone}
    return without_outbox({**result, "revision": doc.get("revision", 0) + 1})


def timestamp_or_none(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
