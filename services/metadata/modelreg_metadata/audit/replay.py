"""Replay: a resource's state rebuilt from its events, the inverse of the diff in events.py.

A creation event carries the whole initial state in `after` and every later event only the fields
that changed (maps by key, the manifest by path, the review history by appended steps), so
applying a resource's events in sequence order from its creation yields its state after any of
them. audit/trail.py replays a version's or an alias's history to answer "what was it at time X?".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelreg_api.names import ModelVersionName

from modelreg_metadata.audit.events import MAP_FIELDS, Event, Json
from modelreg_metadata.domain import (
    Dataset,
    Lineage,
    ModelFile,
    ModelVersion,
    Review,
    ReviewDecision,
    ReviewState,
    Signature,
    TensorSpec,
    VersionState,
)


def apply(current: Json, event: Event) -> Json:
    """The state after `event`, from the state before it (the inverse of `changes`)."""
    result = dict(current)
    for name, value in event.after.items():
        if name in MAP_FIELDS:
            merged = {k: v for k, v in result.get(name, {}).items() if k not in event.before.get(name, {})}
            merged.update(value)
            result[name] = merged
        elif name == "files":
            gone = {f["path"] for f in event.before.get(name, [])}
            kept = {f["path"]: f for f in result.get(name, []) if f["path"] not in gone}
            kept.update({f["path"]: f for f in value})
            result[name] = [kept[p] for p in sorted(kept)]
        elif name == "reviews":
            result[name] = [*result.get(name, []), *value]
        else:
            result[name] = value
    return result


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


def version_from_state(name: ModelVersionName, data: Json, as_of: datetime | None) -> ModelVersion:
    """A version rebuilt from replayed state; `etag` and `aliases` are not history and stay empty."""
    lineage = data.get("lineage") or {}
    signature = data.get("signature") or {}

    def tensors(items: list[Json] | None) -> list[TensorSpec]:
        return [TensorSpec(t["name"], t.get("dtype", ""), list(t.get("shape", []))) for t in items or []]

    return ModelVersion(
        name=name,
        uid=data.get("uid", ""),
        model_uid=data.get("model_uid", ""),
        description=data.get("description", ""),
        tags=dict(data.get("tags", {})),
        params=dict(data.get("params", {})),
        metrics=dict(data.get("metrics", {})),
        lineage=Lineage(
            training_run_id=lineage.get("training_run_id", ""),
            training_run_url=lineage.get("training_run_url", ""),
            source_repository=lineage.get("source_repository", ""),
            source_commit=lineage.get("source_commit", ""),
            datasets=[
                Dataset(d["uri"], d.get("digest", ""), d.get("role", "")) for d in lineage.get("datasets", [])
            ],
            parent_model_version=lineage.get("parent_model_version", ""),
        ),
        signature=Signature(tensors(signature.get("inputs")), tensors(signature.get("outputs"))),
        files=[
            ModelFile(
                f["path"],
                f["size_bytes"],
                f["sha256"],
                f.get("content_type", ""),
                _time(f.get("create_time")),
            )
            for f in data.get("files", [])
        ],
        manifest_digest=data.get("manifest_digest", ""),
        state=VersionState(data.get("state", VersionState.PENDING.value)),
        create_actor=data.get("create_actor", ""),
        create_time=_time(data.get("create_time")),
        update_time=as_of,
        deleted=bool(data.get("deleted", False)),
        review_state=ReviewState(data.get("review_state", ReviewState.NOT_SUBMITTED.value)),
        reviews=[
            Review(
                ReviewDecision(r["decision"]), r.get("actor", ""), _time(r.get("time")), r.get("comment", "")
            )
            for r in data.get("reviews", [])
        ],
    )
