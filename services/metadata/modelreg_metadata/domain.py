"""The registry's resources as plain data, and the rules that hold for them.

Nothing here knows protobuf or BSON: the servicer translates protos to these, the store
translates these to documents.

Resources are frozen: a change makes a new object (`dataclasses.replace`) and never alters one
that was handed out, so stores and the servicer may keep and share them (the FerretDB replica
returns the same version to every search, convert.py keeps the message it built for it). Their
lists and maps are not copied on the way either: treat them as read-only.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelreg_api import manifests
from modelreg_api.errors import FailedPrecondition, InvalidArgument
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName, parse_model_version_name

# Limits. Together they bound a version document far below MongoDB's 16 MiB (see
# `WORST_CASE_VERSION_BYTES` and tests/unit/test_limits.py): histories live outside the document,
# and a manifest is capped in files and in bytes.
MAX_TITLE_CHARS = 256
MAX_DESCRIPTION_CHARS = 8 * 1024
MAX_MODEL_CARD_CHARS = 256 * 1024
MAX_MAP_ENTRIES = 256  # tags, labels
MAX_KEY_CHARS = 256  # tag, label, metric keys and param path segments: bytes of UTF-8
MAX_VALUE_CHARS = 4096  # one tag or label value
MAX_MAP_BYTES = 64 * 1024  # all tags (or labels) of one resource together
MAX_METRICS = 1024  # summary metrics of one version
MAX_PARAMS_JSON_BYTES = 64 * 1024  # canonical JSON of a version's params
MAX_PARAM_DEPTH = 8
MAX_PARAM_PATHS = 1024
MAX_LINEAGE_TEXT_CHARS = 2048  # each lineage string, dataset URI and digest
MAX_DATASETS = 100
MAX_TENSORS = 1000  # inputs and outputs of a signature together
MAX_TENSOR_RANK = 32
MAX_FILES_PER_VERSION = 10_000
MAX_MANIFEST_BYTES = 2 * 1024 * 1024  # keeps GetModelVersion under gRPC's default 4 MiB message
MANIFEST_ENTRY_OVERHEAD = 96  # sha256 hex, size, time and field names of one file entry
MAX_CONTENT_TYPE_CHARS = 255
MAX_ALIASES_PER_MODEL = 100
MAX_POINTS_PER_CALL = 1000
MAX_REVIEWS_PER_VERSION = 100  # review steps kept in the version document
MAX_COMMENT_CHARS = 2048
MAX_GATE_CHARS = 1024
MAX_DIGESTS_PER_CALL = 1000  # CheckBlobReferences
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class VersionState(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    ARCHIVED = "ARCHIVED"


class ReviewState(enum.Enum):
    NOT_SUBMITTED = "NOT_SUBMITTED"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ReviewDecision(enum.Enum):
    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class Direction(enum.Enum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


@dataclass(frozen=True)
class Review:
    """One step of a version's review; steps are appended, never rewritten."""

    decision: ReviewDecision
    actor: str
    time: datetime | None
    comment: str = ""


@dataclass(frozen=True)
class NoRegression:
    metric: str
    direction: Direction


@dataclass(frozen=True)
class AliasProtection:
    """The rules a protected alias enforces on every move (governance.py evaluates them)."""

    name: AliasName
    metric_gate: str = ""
    no_regression: tuple[NoRegression, ...] = ()
    update_time: datetime | None = None
    update_actor: str = ""


@dataclass(frozen=True)
class Namespace:
    name: NamespaceName
    uid: str
    display_name: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""
    create_actor: str = ""
    allow_self_approval: bool = False


@dataclass(frozen=True)
class Model:
    name: ModelName
    uid: str
    display_name: str = ""
    description: str = ""
    model_card: str = ""
    owner: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""
    create_actor: str = ""
    latest_version_number: int = 0
    deleted: bool = False


@dataclass(frozen=True)
class Dataset:
    uri: str
    digest: str = ""
    role: str = ""


@dataclass(frozen=True)
class Lineage:
    training_run_id: str = ""
    training_run_url: str = ""
    source_repository: str = ""
    source_commit: str = ""
    datasets: list[Dataset] = field(default_factory=list)
    parent_model_version: str = ""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str = ""
    shape: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Signature:
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


@dataclass(frozen=True)
class ModelFile:
    path: str
    size_bytes: int
    sha256: str
    content_type: str = ""
    create_time: datetime | None = None


@dataclass(frozen=True)
class ModelVersion:
    name: ModelVersionName
    uid: str
    model_uid: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    signature: Signature = field(default_factory=Signature)
    files: list[ModelFile] = field(default_factory=list)
    manifest_digest: str = ""
    state: VersionState = VersionState.PENDING
    create_actor: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""
    aliases: list[str] = field(default_factory=list)
    deleted: bool = False
    review_state: ReviewState = ReviewState.NOT_SUBMITTED
    reviews: list[Review] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.name.number


@dataclass(frozen=True)
class VersionDraft:
    """What a caller sets when creating a version; the registry makes the version from it once the
    store has given it a number."""

    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    signature: Signature = field(default_factory=Signature)


@dataclass(frozen=True)
class Alias:
    name: AliasName
    version_number: int
    update_time: datetime | None = None
    update_actor: str = ""
    etag: str = ""
    protection: AliasProtection | None = None

    @property
    def model_version(self) -> ModelVersionName:
        return self.name.model_name.version(self.version_number)


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int = 0
    time: datetime | None = None
    dataset: str = ""
    slice: str = ""


@dataclass(frozen=True)
class ComparedRow:
    key: str
    values: list[Any]  # one per compared version; None where the version lacks the key
    differs: bool


def manifest_digest(files: list[ModelFile]) -> str:
    """SHA-256 over the sorted manifest: one `path\\tsize\\tsha256\\n` line per file.

    Clients can recompute it from the file list to check that they hold the whole version.
    """
    lines = "".join(f"{f.path}\t{f.size_bytes}\t{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_text(field_name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(field_name, f"is {len(value)} characters long; the limit is {limit}")


def check_key(field_name: str, key: str) -> None:
    if not key or len(key.encode()) > MAX_KEY_CHARS:
        raise InvalidArgument(field_name, f"key {key[:40]!r} must be 1-{MAX_KEY_CHARS} bytes of UTF-8")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidArgument(field_name, f"key {key[:40]!r} contains a control character")


def check_string_map(field_name: str, values: dict[str, str]) -> None:
    if len(values) > MAX_MAP_ENTRIES:
        raise InvalidArgument(field_name, f"has {len(values)} entries; the limit is {MAX_MAP_ENTRIES}")
    total = 0
    for key, value in values.items():
        check_key(field_name, key)
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidArgument(
                f"{field_name}[{key}]", f"value is longer than {MAX_VALUE_CHARS} characters"
            )
        total += len(key.encode()) + len(value.encode())
    if total > MAX_MAP_BYTES:
        raise InvalidArgument(
            field_name, f"holds {total} bytes of keys and values; the limit is {MAX_MAP_BYTES}"
        )


def check_metric_value(field_name: str, value: float) -> None:
    if not math.isfinite(value):
        raise InvalidArgument(
            field_name,
            f"{value} is not a finite number; NaN and infinities are rejected "
            "(they cannot be stored, compared or searched faithfully)",
            reason="NON_FINITE_METRIC",
        )


def check_metrics(values: dict[str, float], field_name: str = "metrics") -> None:
    if len(values) > MAX_METRICS:
        raise InvalidArgument(field_name, f"has {len(values)} entries; the limit is {MAX_METRICS}")
    for key, value in values.items():
        check_key(field_name, key)
        check_metric_value(f"{field_name}[{key}]", value)


def check_params(params: dict[str, Any], field_name: str = "params") -> None:
    size = len(json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PARAMS_JSON_BYTES:
        raise InvalidArgument(field_name, f"are {size} bytes as JSON; the limit is {MAX_PARAMS_JSON_BYTES}")

    def walk(value: Any, path: tuple[str, ...], where: str) -> None:
        # `path` holds the keys (what the depth limit counts); `where` names the value for the
        # caller, list indices included: `model_version.params.optimizer.schedule[1]`.
        if len(path) > MAX_PARAM_DEPTH:
            raise InvalidArgument(
                field_name, f"nest deeper than {MAX_PARAM_DEPTH} levels at {'.'.join(path)}"
            )
        if isinstance(value, dict):
            for key, inner in value.items():
                check_key(field_name, key)
                walk(inner, (*path, key), f"{where}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, path, f"{where}[{i}]")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(
                where,
                f"{value} is not a finite number; NaN and infinities are rejected "
                "(they cannot be stored, compared or searched faithfully)",
                reason="NON_FINITE_PARAM",
            )

    walk(params, (), field_name)
    paths = len(flatten_params(params))
    if paths > MAX_PARAM_PATHS:
        raise InvalidArgument(field_name, f"hold {paths} distinct paths; the limit is {MAX_PARAM_PATHS}")


def flatten_params(params: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """Every scalar under its path of keys. A list of scalars stays one value (searched per
    element); maps inside lists are not addressable by path (they remain in the params)."""
    flat: dict[tuple[str, ...], Any] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, (*path, key))
        elif isinstance(value, list):
            scalars = [v for v in value if not isinstance(v, dict | list)]
            if path and scalars:
                flat[path] = scalars
        elif path:
            flat[path] = value

    walk(params, ())
    return flat


def check_lineage(lineage: Lineage, field_name: str = "lineage") -> None:
    for attribute in ("training_run_id", "training_run_url", "source_repository", "source_commit"):
        check_text(f"{field_name}.{attribute}", getattr(lineage, attribute), MAX_LINEAGE_TEXT_CHARS)
    if lineage.parent_model_version:
        parse_model_version_name(lineage.parent_model_version, f"{field_name}.parent_model_version")
    if len(lineage.datasets) > MAX_DATASETS:
        raise InvalidArgument(
            f"{field_name}.datasets", f"has {len(lineage.datasets)} entries; the limit is {MAX_DATASETS}"
        )
    for i, dataset in enumerate(lineage.datasets):
        if not dataset.uri:
            raise InvalidArgument(f"{field_name}.datasets[{i}].uri", "is required")
        check_text(f"{field_name}.datasets[{i}].uri", dataset.uri, MAX_LINEAGE_TEXT_CHARS)
        check_text(f"{field_name}.datasets[{i}].digest", dataset.digest, MAX_LINEAGE_TEXT_CHARS)
        check_text(f"{field_name}.datasets[{i}].role", dataset.role, MAX_TITLE_CHARS)


def check_signature(signature: Signature, field_name: str = "signature") -> None:
    tensors = [("inputs", i, t) for i, t in enumerate(signature.inputs)]
    tensors += [("outputs", i, t) for i, t in enumerate(signature.outputs)]
    if len(tensors) > MAX_TENSORS:
        raise InvalidArgument(field_name, f"has {len(tensors)} tensors; the limit is {MAX_TENSORS}")
    for side, i, tensor in tensors:
        where = f"{field_name}.{side}[{i}]"
        check_text(f"{where}.name", tensor.name, MAX_KEY_CHARS)
        check_text(f"{where}.dtype", tensor.dtype, 64)
        if len(tensor.shape) > MAX_TENSOR_RANK:
            raise InvalidArgument(f"{where}.shape", f"has more than {MAX_TENSOR_RANK} dimensions")
        if any(d < -1 for d in tensor.shape):
            raise InvalidArgument(f"{where}.shape", "dimensions are sizes >= 0, or -1 for a variable size")


def manifest_bytes(files: list[ModelFile]) -> int:
    return sum(len(f.path.encode()) + len(f.content_type) + MANIFEST_ENTRY_OVERHEAD for f in files)


def added_to_manifest(
    version: ModelVersion, files: list[ModelFile], *, replace_existing: bool
) -> list[ModelFile] | None:
    """The version's manifest with `files` added in order (sorted by path), or None when they
    change nothing. Refuses other content at a stored path unless `replace_existing`, and any
    path that cannot live beside another in one directory tree (modelreg_api.manifests)."""
    manifest = {f.path: f for f in version.files}
    paths = manifests.ManifestPaths(manifest)
    changed = False
    for file in files:
        present = manifest.get(file.path)
        if present is not None:
            if (present.sha256, present.size_bytes) == (file.sha256, file.size_bytes):
                continue  # the same content again
            if not replace_existing:
                raise manifests.file_exists(file.path, present.sha256, file.sha256, str(version.name))
        else:
            manifests.check_path(paths, file.path, str(version.name))
            paths.add(file.path)
        manifest[file.path] = file
        changed = True
    return sorted(manifest.values(), key=lambda f: f.path) if changed else None


def check_manifest_room(files: list[ModelFile], name: ModelVersionName) -> None:
    """A manifest that would no longer fit the version's budget is refused, whole."""
    if len(files) > MAX_FILES_PER_VERSION:
        raise FailedPrecondition(
            f"model version {name} would hold {len(files)} files; the limit is {MAX_FILES_PER_VERSION}",
            reason="MANIFEST_FULL",
        )
    size = manifest_bytes(files)
    if size > MAX_MANIFEST_BYTES:
        raise FailedPrecondition(
            f"model version {name}'s manifest would take {size} bytes; the limit is {MAX_MANIFEST_BYTES}",
            reason="MANIFEST_FULL",
        )


def check_metric_points(points: list[MetricPoint]) -> None:
    if not points:
        raise InvalidArgument("points", "at least one point is required")
    if len(points) > MAX_POINTS_PER_CALL:
        raise InvalidArgument(
            "points", f"has {len(points)} points; the limit is {MAX_POINTS_PER_CALL} per call"
        )
    for i, point in enumerate(points):
        check_key(f"points[{i}].key", point.key)
        check_metric_value(f"points[{i}].value", point.value)
        check_text(f"points[{i}].dataset", point.dataset, MAX_KEY_CHARS)
        check_text(f"points[{i}].slice", point.slice, MAX_KEY_CHARS)


# The largest version document the limits above allow, in bytes of BSON, give or take field names:
# every map is stored twice (pairs + hex-keyed map, keys doubling in hex).
WORST_CASE_VERSION_BYTES = (
    MAX_DESCRIPTION_CHARS * 4  # UTF-8 up to 4 bytes a character
    + 3 * MAX_MAP_BYTES  # tags: pairs + hex-keyed map (hex doubles the key bytes)
    + 4 * MAX_PARAMS_JSON_BYTES  # params JSON + flattened map with hex path keys
    + MAX_METRICS * (4 * MAX_KEY_CHARS + 3 * 8 + 64)  # key in pairs, meta and hex map; values
    + 4 * MAX_LINEAGE_TEXT_CHARS * 4
    + MAX_DATASETS * (2 * MAX_LINEAGE_TEXT_CHARS + MAX_TITLE_CHARS) * 4
    + MAX_TENSORS * (MAX_KEY_CHARS * 4 + 64 + MAX_TENSOR_RANK * 8 + 32)
    + MAX_MANIFEST_BYTES
    + MAX_REVIEWS_PER_VERSION * (MAX_COMMENT_CHARS * 4 + MAX_TITLE_CHARS + 64)
    + 4096  # identity, times, state, etag, counters
)


def check_digests(digests: list[str], field: str = "sha256s") -> list[str]:
    if len(digests) > MAX_DIGESTS_PER_CALL:
        raise InvalidArgument(field, f"has {len(digests)} digests; at most {MAX_DIGESTS_PER_CALL} per call")
    for digest in digests:
        if not _SHA256_HEX.fullmatch(digest):
            raise InvalidArgument(field, f"{digest[:80]!r} is not 64 lowercase hex characters")
    return digests
