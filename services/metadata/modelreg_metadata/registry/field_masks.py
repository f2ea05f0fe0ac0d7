"""Field masks of the Update methods (AIP-134): which fields of each resource an update may name.

Output-only and immutable fields are refused in a mask with a reason of their own, so a caller
learns why; an empty mask updates every updatable field the request sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from modelreg_api.errors import InvalidArgument

T = TypeVar("T")


@dataclass(frozen=True)
class Mask:
    """Which fields of a resource an update may name, and how each is guarded."""

    updatable: frozenset[str]
    output_only: frozenset[str]
    immutable: frozenset[str] = frozenset()
    frozen_when_sealed: frozenset[str] = frozenset()

    def paths(self, resource: str, requested: Sequence[str], populated: Sequence[str]) -> list[str]:
        """The fields to update. An empty mask means every updatable field set in the request."""
        if not requested:
            return [p for p in populated if p in self.updatable]
        if list(requested) == ["*"]:
            return sorted(self.updatable)
        for path in requested:
            if path in self.output_only:
                raise InvalidArgument(
                    "update_mask",
                    f"`{path}` is output only; it cannot be updated",
                    reason="FIELD_OUTPUT_ONLY",
                )
            if path in self.immutable:
                raise InvalidArgument(
                    "update_mask", f"`{path}` is immutable; it cannot be updated", reason="FIELD_IMMUTABLE"
                )
            if path not in self.updatable:
                raise InvalidArgument(
                    "update_mask",
                    f"`{path}` is not a field of {resource} that can be updated; "
                    f"updatable: {', '.join(sorted(self.updatable))}",
                    reason="FIELD_NOT_UPDATABLE",
                )
        return list(dict.fromkeys(requested))


NAMESPACE_MASK = Mask(
    updatable=frozenset({"display_name", "description", "labels", "allow_self_approval"}),
    output_only=frozenset({"uid", "create_time", "update_time", "etag", "create_actor"}),
    immutable=frozenset({"name"}),
)
MODEL_MASK = Mask(
    updatable=frozenset({"display_name", "description", "model_card", "owner", "labels"}),
    output_only=frozenset(
        {"uid", "create_time", "update_time", "etag", "create_actor", "latest_version_number", "deleted"}
    ),
    immutable=frozenset({"name"}),
)
VERSION_MASK = Mask(
    updatable=frozenset({"description", "tags", "metrics", "params", "lineage", "signature"}),
    output_only=frozenset(
        {
            "uid",
            "number",
            "files",
            "manifest_digest",
            "state",
            "create_actor",
            "create_time",
            "update_time",
            "etag",
            "aliases",
            "deleted",
            "review_state",
            "reviews",
        }
    ),
    immutable=frozenset({"name"}),
    frozen_when_sealed=frozenset({"params", "lineage", "signature"}),
)


def copy_fields(target: T, source: Any, paths: Sequence[str]) -> T:
    return replace(target, **{path: getattr(source, path) for path in paths})  # type: ignore[type-var]
