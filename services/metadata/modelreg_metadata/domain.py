"""The registry's resources as plain data, and the rules that hold for them.

Nothing here knows protobuf or BSON: the servicer translates protos to these, the store
translates these to documents.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelreg.names import AliasName, ModelName, ModelVersionName
from modelreg_common.errors import InvalidArgument

MAX_DESCRIPTION_CHARS = 8 * 1024
MAX_MODEL_CARD_CHARS = 256 * 1024
MAX_MAP_ENTRIES = 256
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 4096


class VersionState(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    ARCHIVED = "ARCHIVED"


@dataclass
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


@dataclass
class Dataset:
    uri: str
    digest: str = ""
    role: str = ""


@dataclass
class Lineage:
    training_run_id: str = ""
    training_run_url: str = ""
    source_repository: str = ""
    source_commit: str = ""
    datasets: list[Dataset] = field(default_factory=list)
    parent_model_version: str = ""


@dataclass
class TensorSpec:
    name: str
    dtype: str = ""
    shape: list[int] = field(default_factory=list)


@dataclass
class Signature:
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


@dataclass
class ModelFile:
    path: str
    size_bytes: int
    sha256: str
    content_type: str = ""
    create_time: datetime | None = None


@dataclass
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

    @property
    def number(self) -> int:
        return self.name.number


@dataclass
class Alias:
    name: AliasName
    version_number: int
    update_time: datetime | None = None
    update_actor: str = ""
    etag: str = ""

    @property
    def model_version(self) -> ModelVersionName:
        return self.name.model_name.version(self.version_number)


def manifest_digest(files: list[ModelFile]) -> str:
    """SHA-256 over the sorted manifest: one `path\\tsize\\tsha256\\n` line per file.

    Clients can recompute it from the file list to check that they hold the whole version.
    """
    lines = "".join(f"{f.path}\t{f.size_bytes}\t{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_text(field_name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(field_name, f"is {len(value)} characters long; the limit is {limit}")


def check_string_map(field_name: str, values: dict[str, str]) -> None:
    if len(values) > MAX_MAP_ENTRIES:
        raise InvalidArgument(field_name, f"has {len(values)} entries; the limit is {MAX_MAP_ENTRIES}")
    for key, value in values.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise InvalidArgument(field_name, f"key {key[:40]!r} must be 1-{MAX_KEY_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidArgument(
                f"{field_name}[{key}]", f"value is longer than {MAX_VALUE_CHARS} characters"
            )


def check_metrics(values: dict[str, float]) -> None:
    if len(values) > MAX_MAP_ENTRIES:
        raise InvalidArgument("metrics", f"has {len(values)} entries; the limit is {MAX_MAP_ENTRIES}")
    for key, value in values.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise InvalidArgument("metrics", f"key {key[:40]!r} must be 1-{MAX_KEY_CHARS} characters")
        if not math.isfinite(value):
            raise InvalidArgument(
                f"metrics[{key}]", f"{value} is not a finite number; NaN and infinities are rejected"
            )
