"""Searches (ListModels, ListModelVersions) as the stores receive them: typed, checked, no text.

The use cases parse the user's filter and order_by (filtering.py) and bind them here to the
fields of the resource searched (`Schema.bind`, `Schema.order`): every path becomes a `Field`
(a fixed field, one key of a map of user keys, or a path into the params) and every literal a
value of the field's type. What a store receives is a `Search` of those typed conditions; each
store compiles it its own way (store/query.py for MongoDB) and answers with a `Page`. So a filter
is checked once, before any store work, and a user string never reaches a store as anything but
a value or a key.

Semantics every store keeps (docs/filter-language.md): comparisons within one type only
(`params.lr > 0.01` matches numbers); `!=` and `NOT IN` match resources that have the key with
another value; a list-valued param matches when any element does; values of different types
order as null (or missing) < numbers < text < booleans < times, and the resource's key breaks
ties, so an order is total and keyset pages (`Cursor`) continue exactly after the last row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from modelreg_api.errors import InvalidArgument, quoted

from modelreg_metadata.domain import VersionState
from modelreg_metadata.filtering import And, Expr, In, Not, Op, Or, OrderKey, Path, StartsWith

T = TypeVar("T")


class Kind(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    TIME = "timestamp"
    STATE = "state"
    ANY = "any"  # params: strings, numbers or booleans


@dataclass(frozen=True)
class Field:
    """A field a search tests or orders by: a resource's own field (`name` is e.g. `state` or
    `lineage.source_commit`), one key of a map of user keys (`name` is `tags`, `metrics` or
    `labels`; `key` holds the one key), or a path into the params (`key` holds its segments)."""

    name: str
    kind: Kind
    key: tuple[str, ...] = ()


# The conditions of a search: the filter's AST with fields resolved and values typed.


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: Op
    value: Any


@dataclass(frozen=True)
class OneOf:
    field: Field
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Prefix:
    field: Field
    prefix: str


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    item: Condition


Condition = Comparison | OneOf | Prefix | AllOf | AnyOf | Negation


@dataclass(frozen=True)
class Sort:
    field: Field
    descending: bool = False


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort values of its last row and that row's key (keyset paging)."""

    values: tuple[Any, ...]
    key: str


@dataclass(frozen=True)
class Search:
    """One page of a search: rows matching `condition` (None: every row), in `order`, after
    `after`, at most `limit`; deleted resources only with `show_deleted`."""

    condition: Condition | None
    order: tuple[Sort, ...]
    limit: int
    after: Cursor | None = None
    show_deleted: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    """The resources of one page (those hidden, like the versions of a deleted model, are left
    out but still move the cursor) and where the next page starts (None: this is the last)."""

    items: list[T]
    next: Cursor | None


# The order of values of different types (MongoDB's, for the types a resource holds).
TYPE_ORDER = ("null", "number", "string", "bool", "date")


def sort_type(value: Any) -> str:
    """Which of TYPE_ORDER a value sorts as; lists (multi-valued params) and maps as missing."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    return "null"


@dataclass(frozen=True)
class Schema:
    """The fields a resource can be filtered and ordered on."""

    fields: dict[str, Kind]
    maps: dict[str, Kind]  # a map of user keys -> the kind of its values
    nested: frozenset[str]  # nested user data, addressed by a path of any depth
    default_order: tuple[OrderKey, ...]

    def resolve(self, path: Path, field_name: str) -> Field:
        head, rest = path.segments[0], path.segments[1:]
        if not rest:
            found = self.fields.get(head)
            if found is not None:
                return Field(head, found)
        if head in self.maps and len(rest) == 1:
            return Field(head, self.maps[head], rest)
        if head in self.nested and rest:
            return Field(head, Kind.ANY, rest)
        dotted = ".".join(path.segments[:2])
        found = self.fields.get(dotted) if len(path.segments) == 2 else None
        if found is not None:
            return Field(dotted, found)
        hint = ", ".join(
            sorted([*self.fields, *(f"{m}.<key>" for m in self.maps), *(f"{n}.<path>" for n in self.nested)])
        )
        if head in self.maps:
            raise InvalidArgument(
                field_name,
                f"{path} names a key with dots: write it as {head}.`{'.'.join(rest)}`",
                reason="INVALID_FILTER",
            )
        raise InvalidArgument(
            field_name, f"unknown field {path}; filterable fields: {hint}", reason="INVALID_FILTER"
        )

    def bind(self, expr: Expr | None, field_name: str = "filter") -> Condition | None:
        """The filter's conditions on this resource's fields; InvalidArgument names the first
        unknown field or value of the wrong type."""
        return None if expr is None else self._bind(expr, field_name)

    def _bind(self, expr: Expr, field_name: str) -> Condition:
        if isinstance(expr, And):
            return AllOf(tuple(self._bind(e, field_name) for e in expr.items))
        if isinstance(expr, Or):
            return AnyOf(tuple(self._bind(e, field_name) for e in expr.items))
        if isinstance(expr, Not):
            return Negation(self._bind(expr.item, field_name))
        field = self.resolve(expr.path, field_name)
        if isinstance(expr, In):
            return OneOf(field, tuple(_value(field, v, expr.path, field_name) for v in expr.values))
        if isinstance(expr, StartsWith):
            if field.kind not in (Kind.STRING, Kind.ANY):
                raise InvalidArgument(
                    field_name, f"STARTS_WITH applies to text; {expr.path} is not", reason="INVALID_FILTER"
                )
            return Prefix(field, expr.prefix)
        return Comparison(field, expr.op, _value(field, expr.value, expr.path, field_name))

    def order(self, keys: list[OrderKey], field_name: str = "order_by") -> tuple[Sort, ...]:
        """The sort keys of `keys`, or of the resource's default order when there are none."""
        return tuple(Sort(self.resolve(k.path, field_name), k.descending) for k in keys or self.default_order)


def _value(field: Field, value: Any, path: Path, field_name: str) -> Any:
    """The value as the field holds it, or InvalidArgument when it cannot match the field's type."""

    def wrong(expected: str) -> InvalidArgument:
        return InvalidArgument(
            field_name,
            f"{path} holds {expected}; {quoted(value)} cannot be compared with it",
            reason="INVALID_FILTER",
        )

    if field.kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, float):
            raise wrong("numbers")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if field.kind is Kind.STRING:
        if not isinstance(value, str):
            raise wrong('text (quote the value: "...")')
        return value
    if field.kind is Kind.STATE:
        states = [s.value for s in VersionState]
        if not isinstance(value, str) or value.upper() not in states:
            raise InvalidArgument(
                field_name,
                f"state is one of {', '.join(states)}, not {quoted(value)}",
                reason="INVALID_FILTER",
            )
        return value.upper()
    if field.kind is Kind.TIME:
        if not isinstance(value, str):
            raise wrong('timestamps (an RFC 3339 string such as "2026-01-31T12:00:00Z")')
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise wrong('timestamps (an RFC 3339 string such as "2026-01-31T12:00:00Z")') from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # params hold JSON numbers; 64 and 64.0 are the same number
    return value


VERSION_SCHEMA = Schema(
    fields={
        "number": Kind.NUMBER,
        "state": Kind.STATE,
        "create_time": Kind.TIME,
        "update_time": Kind.TIME,
        "create_actor": Kind.STRING,
        "description": Kind.STRING,
        "model_id": Kind.STRING,
        "namespace": Kind.STRING,
        "manifest_digest": Kind.STRING,
        "lineage.training_run_id": Kind.STRING,
        "lineage.training_run_url": Kind.STRING,
        "lineage.source_repository": Kind.STRING,
        "lineage.source_commit": Kind.STRING,
        "lineage.parent_model_version": Kind.STRING,
    },
    maps={"tags": Kind.STRING, "metrics": Kind.NUMBER},
    nested=frozenset({"params"}),
    default_order=(OrderKey(Path(("number",))),),
)

MODEL_SCHEMA = Schema(
    fields={
        "model_id": Kind.STRING,
        "display_name": Kind.STRING,
        "description": Kind.STRING,
        "owner": Kind.STRING,
        "create_actor": Kind.STRING,
        "create_time": Kind.TIME,
        "update_time": Kind.TIME,
        "latest_version_number": Kind.NUMBER,
    },
    maps={"labels": Kind.STRING},
    nested=frozenset(),
    default_order=(OrderKey(Path(("model_id",))),),
)
