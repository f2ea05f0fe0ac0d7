"""Versions side by side: what `CompareModelVersions` returns, as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2


@dataclass(frozen=True, slots=True)
class ComparedRow:
    """One metric key or param path and its value in each compared version.

    `values` follows the order of `Comparison.versions`; a version that lacks the key has None.
    """

    key: str
    values: tuple[Any, ...]
    # The versions do not all hold the same value (a missing value counts as different).
    differs: bool

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": list(self.values), "differs": self.differs}


def _python(value: struct_pb2.Value) -> Any:
    if value.WhichOneof("kind") in (None, "null_value"):
        return None
    return json_format.MessageToDict(value)


def _row(row: md.ComparedRow) -> ComparedRow:
    return ComparedRow(row.key, tuple(_python(v) for v in row.values), row.differs)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The compared versions (the columns) and one row per metric and per param."""

    versions: tuple[model_pb2.ModelVersion, ...]
    metrics: tuple[ComparedRow, ...]
    # Params flattened to paths as the filter language writes them (`optimizer.lr`).
    params: tuple[ComparedRow, ...]

    @classmethod
    def from_proto(cls, response: md.CompareModelVersionsResponse) -> Comparison:
        return cls(
            versions=tuple(response.model_versions),
            metrics=tuple(_row(r) for r in response.metrics),
            params=tuple(_row(r) for r in response.params),
        )

    @property
    def differences(self) -> tuple[ComparedRow, ...]:
        """The metric and param rows on which the versions disagree."""
        return tuple(row for row in (*self.metrics, *self.params) if row.differs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": [v.name for v in self.versions],
            "metrics": [row.to_dict() for row in self.metrics],
            "params": [row.to_dict() for row in self.params],
        }
