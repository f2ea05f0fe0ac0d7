"""Domain objects <-> MongoDB documents.

User-chosen keys (tags, labels, metrics) may contain `.` or start with `$`, which MongoDB
field names (and FerretDB) do not allow; maps are therefore stored as arrays of `{k, v}` pairs,
which also index and filter well (`{"metrics": {"$elemMatch": {"k": ..., "v": ...}}}`).
Params are nested user data: they are kept as canonical JSON text so any key survives intact.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from modelreg.names import AliasName, ModelName

from modelreg_metadata.domain import (
    Alias,
    Dataset,
    Lineage,
    Model,
    ModelFile,
    ModelVersion,
    Signature,
    TensorSpec,
    VersionState,
)

Document = dict[str, Any]


def pairs(values: dict[str, Any]) -> list[Document]:
    return [{"k": key, "v": value} for key, value in sorted(values.items())]


def unpairs(items: list[Document] | None) -> dict[str, Any]:
    return {item["k"]: item["v"] for item in items or []}


def model_document(model: Model) -> Document:
    return {
        "_id": model.uid,
        "namespace": model.name.namespace,
        "model_id": model.name.model,
        "display_name": model.display_name,
        "description": model.description,
        "model_card": model.model_card,
        "owner": model.owner,
        "labels": pairs(model.labels),
        "create_time": model.create_time,
        "update_time": model.update_time,
        "etag": model.etag,
        "create_actor": model.create_actor,
        "latest_version_number": model.latest_version_number,
        "deleted": model.deleted,
    }


def model_from(doc: Document) -> Model:
    return Model(
        name=ModelName(doc["namespace"], doc["model_id"]),
        uid=doc["_id"],
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


def _lineage_document(lineage: Lineage) -> Document:
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


def version_document(version: ModelVersion) -> Document:
    return {
        "_id": version.uid,
        "model_uid": version.model_uid,
        "namespace": version.name.namespace,
        "model_id": version.name.model,
        "number": version.number,
        "description": version.description,
        "tags": pairs(version.tags),
        "params_json": json.dumps(version.params, sort_keys=True, separators=(",", ":")),
        "metrics": pairs(version.metrics),
        "lineage": _lineage_document(version.lineage),
        "signature": {
            "inputs": _tensors_document(version.signature.inputs),
            "outputs": _tensors_document(version.signature.outputs),
        },
        "files": [file_document(f) for f in version.files],
        "manifest_digest": version.manifest_digest,
        "state": version.state.value,
        "create_actor": version.create_actor,
        "create_time": version.create_time,
        "update_time": version.update_time,
        "etag": version.etag,
        "deleted": version.deleted,
    }


def version_from(doc: Document, aliases: list[str] | None = None) -> ModelVersion:
    signature = doc.get("signature") or {}
    return ModelVersion(
        name=ModelName(doc["namespace"], doc["model_id"]).version(doc["number"]),
        uid=doc["_id"],
        model_uid=doc["model_uid"],
        description=doc.get("description", ""),
        tags=unpairs(doc.get("tags")),
        params=json.loads(doc.get("params_json") or "{}"),
        metrics=unpairs(doc.get("metrics")),
        lineage=_lineage_from(doc.get("lineage")),
        signature=Signature(_tensors_from(signature.get("inputs")), _tensors_from(signature.get("outputs"))),
        files=[file_from(f) for f in doc.get("files", [])],
        manifest_digest=doc.get("manifest_digest", ""),
        state=VersionState(doc.get("state", VersionState.PENDING.value)),
        create_actor=doc.get("create_actor", ""),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        etag=doc.get("etag", ""),
        aliases=sorted(aliases or []),
        deleted=doc.get("deleted", False),
    )


def alias_document(model_uid: str, alias: Alias) -> Document:
    return {
        "model_uid": model_uid,
        "namespace": alias.name.namespace,
        "model_id": alias.name.model,
        "alias": alias.name.alias,
        "version_number": alias.version_number,
        "update_time": alias.update_time,
        "update_actor": alias.update_actor,
        "etag": alias.etag,
    }


def alias_from(doc: Document) -> Alias:
    update_time: datetime | None = doc.get("update_time")
    return Alias(
        name=AliasName(doc["namespace"], doc["model_id"], doc["alias"]),
        version_number=doc["version_number"],
        update_time=update_time,
        update_actor=doc.get("update_actor", ""),
        etag=doc.get("etag", ""),
    )
