"""How registry values read on a page: times, sizes, states, links, and refusals in plain words.

Templates call these (registered as Jinja filters and globals in `views.py`); none of them
returns markup, so everything they produce is escaped by the template like any other text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import quote, urlsplit

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from modelreg.errors import RegistryError
from modelregistry.v1 import model_pb2


def when(stamp: timestamp_pb2.Timestamp | None) -> str:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return ""
    return stamp.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(stamp: timestamp_pb2.Timestamp | None) -> str:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return ""
    return stamp.ToDatetime(UTC).isoformat().replace("+00:00", "Z")


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def number(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def version_state(value: int) -> str:
    return model_pb2.ModelVersionState.Name(value).removeprefix("MODEL_VERSION_STATE_")  # type: ignore[arg-type]


def review_state(value: int) -> str:
    name = model_pb2.ModelVersionReviewState.Name(value).removeprefix("MODEL_VERSION_REVIEW_STATE_")  # type: ignore[arg-type]
    return "NOT_SUBMITTED" if name == "UNSPECIFIED" else name


def decision(value: int) -> str:
    return model_pb2.ReviewDecision.Name(value).removeprefix("REVIEW_DECISION_")  # type: ignore[arg-type]


def direction(value: int) -> str:
    if value == model_pb2.METRIC_DIRECTION_MAXIMIZE:
        return "higher is better"
    if value == model_pb2.METRIC_DIRECTION_MINIMIZE:
        return "lower is better"
    return ""


def short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


_RESOURCE = re.compile(
    r"^namespaces/(?P<ns>[^/]+)(?:/models/(?P<model>[^/]+)(?:/(?P<kind>versions|aliases)/(?P<id>[^/]+))?)?$"
)


def ui_path(resource: str) -> str:
    """The page of a resource name (`namespaces/a/models/b/versions/3` -> `/n/a/m/b/v/3`)."""
    found = _RESOURCE.match(resource)
    if found is None:
        return ""
    path = f"/n/{quote(found['ns'])}"
    if found["model"]:
        path += f"/m/{quote(found['model'])}"
    if found["kind"] == "versions":
        path += f"/v/{quote(found['id'])}"
    elif found["kind"] == "aliases":
        path += f"#alias-{quote(found['id'])}"
    return path


def short_name(resource: str) -> str:
    """`namespaces/a/models/b/versions/3` -> `a/b/3`; aliases as `a/b@prod`."""
    found = _RESOURCE.match(resource)
    if found is None:
        return resource
    text = found["ns"]
    if found["model"]:
        text += f"/{found['model']}"
    if found["kind"] == "versions":
        text += f"/{found['id']}"
    elif found["kind"] == "aliases":
        text += f"@{found['id']}"
    return text


def safe_url(url: str) -> str:
    """`url` when it is an absolute http(s) link, else "" (a `javascript:` lineage URL is text)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else ""


def file_url(version_path: str, file_path: str) -> str:
    return f"{version_path}/files/{quote(file_path)}"


def plain(value: Any) -> str:
    """A param, tag or JSON value as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested params as (`a.b.c`, value) pairs; lists stay whole, like the filter language."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{path}.")
        else:
            yield path, value


def column_value(version: model_pb2.ModelVersion, params: Mapping[str, Any], column: str) -> str:
    """The cell of a user-picked column: `metrics.x`, `params.a.b`, `tags.x` or a field."""
    kind, _, key = column.partition(".")
    if kind == "metrics":
        return number(version.metrics[key]) if key in version.metrics else ""
    if kind == "tags":
        return version.tags.get(key, "")
    if kind == "params":
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return ""
            node = node[part]
        return plain(node)
    return ""


def finite(value: float) -> float | None:
    """A value JSON can carry: NaN and the infinities (which JSON has no words for) become null."""
    return value if math.isfinite(value) else None


def json_for_script(data: Any) -> str:
    """JSON to place inside `<script type="application/json">`: `<`, `>` and `&` escaped, so no
    user text can close the element (it is data, never executed)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused action as a person reads it: what happened, why, and the values compared."""

    title: str
    explanation: str
    reason: str = ""
    message: str = ""
    values: list[tuple[str, str]] = field(default_factory=list)


_VALUE_LABELS = {
    "alias": "alias",
    "model_version": "candidate version",
    "gate": "gate",
    "condition": "failing condition",
    "metric": "metric",
    "candidate_value": "candidate's value",
    "current_value": "current version's value",
    "current_model_version": "current version",
    "direction": "direction",
    "state": "state",
    "review_state": "review state",
    "permission": "permission needed",
    "resource": "on",
    "principal": "you are",
}


def _direction_words(text: str) -> str:
    return {
        "METRIC_DIRECTION_MAXIMIZE": "higher is better",
        "METRIC_DIRECTION_MINIMIZE": "lower is better",
    }.get(text, text)


def explain(error: RegistryError, action: str) -> Refusal:
    """Why the registry refused `action`, in plain words, from the ErrorInfo reason and metadata."""
    meta = dict(error.metadata)
    alias = meta.get("alias", "").rpartition("/")[2] or "the alias"
    candidate = short_name(meta.get("model_version", "")) or "the version"
    reason = error.reason
    texts = {
        "METRIC_GATE_FAILED": (
            f"{alias} is protected by the gate {meta.get('gate', '')!s}. {candidate} has "
            f"{meta.get('metric', '')} = {meta.get('candidate_value', '?')}, which fails "
            f"{meta.get('condition', '')}."
        ),
        "METRIC_REGRESSION": (
            f"{alias} must not get worse on {meta.get('metric', '')} "
            f"({_direction_words(meta.get('direction', ''))}). {candidate} has "
            f"{meta.get('candidate_value', '?')}, the version it points at now "
            f"({short_name(meta.get('current_model_version', ''))}) has {meta.get('current_value', '?')}."
        ),
        "METRIC_MISSING": (
            f"{candidate} has no metric {meta.get('metric', '')}, which {alias}'s rule "
            f"{meta.get('condition', '')} needs."
        ),
        "PROTECTED_ALIAS_VERSION_NOT_APPROVED": (
            f"{alias} is protected: it points only at approved versions, and {candidate} is not approved."
        ),
        "PROTECTED_ALIAS_VERSION_NOT_READY": (
            f"{alias} is protected: it points only at READY (sealed) versions; {candidate} is "
            f"{meta.get('state', 'not READY')}."
        ),
        "SELF_APPROVAL_NOT_ALLOWED": (
            "Four eyes: you created this version, so somebody else must approve it "
            "(this namespace does not allow self-approval)."
        ),
        "IAM_PERMISSION_DENIED": (
            f"Your role does not allow this: it needs the permission {meta.get('permission', '')}."
        ),
        "REVIEW_NOT_PENDING": "The version is not waiting for a review: submit it for review first.",
        "REVIEW_ALREADY_PENDING": "The version is already waiting for a review.",
        "ALREADY_APPROVED": "The version is approved already.",
        "VERSION_NOT_READY": "Only a READY (sealed) version can be approved.",
    }
    explanation = texts.get(reason, error.message)
    values = [
        (_VALUE_LABELS.get(key, key), _direction_words(value) if key == "direction" else value)
        for key, value in sorted(meta.items())
    ]
    return Refusal(
        title=f"The registry refused to {action}",
        explanation=explanation,
        reason=reason,
        message=error.message,
        values=values,
    )


_POSITION = re.compile(r"at position (\d+)")


@dataclass(frozen=True, slots=True)
class FilterError:
    """A filter the service could not parse, with the (1-based) position it names."""

    text: str
    message: str
    position: int  # 0 when the service named none

    @property
    def caret(self) -> str:
        return " " * max(0, self.position - 1) + "^" if self.position else ""


def filter_error(text: str, error: RegistryError) -> FilterError:
    found = _POSITION.search(error.message)
    return FilterError(text=text, message=error.message, position=int(found.group(1)) if found else 0)
