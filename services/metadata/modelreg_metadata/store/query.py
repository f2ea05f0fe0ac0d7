"""The filter language's AST -> MongoDB query documents, sort specs and keyset conditions.

Safety: operators in the output come only from this module's constants; user text becomes
values, or field names only through `encode_key` (hex), never anything MongoDB interprets.

Semantics (docs/filter-language.md):
- comparisons follow MongoDB's type bracketing: `params.lr > 0.01` matches numbers only;
- `!=` and `NOT IN` match resources that HAVE the key with another value (a missing key never
  matches a comparison, so `NOT (x = 1)` is the way to include resources without x);
- a list-valued param matches when any element matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelreg_api.errors import InvalidArgument

from modelreg_metadata.domain import VersionState
from modelreg_metadata.filtering import And, Expr, In, Not, Op, Or, OrderKey, Path, StartsWith
from modelreg_metadata.store.documents import Document, encode_key, encode_path
from modelreg_metadata.store.matcher import bson_type


class Kind:
    STRING = "string"
    NUMBER = "number"
    TIME = "timestamp"
    STATE = "state"
    ANY = "any"  # params: strings, numbers or booleans


@dataclass(frozen=True)
class Field:
    path: str  # the MongoDB field
    kind: str


@dataclass(frozen=True)
class Schema:
    """The fields a resource can be filtered and ordered on."""

    fields: dict[str, Field]
    maps: dict[str, tuple[str, str]]  # prefix -> (MongoDB map field, kind of its values)
    nested: dict[str, str]  # prefix whose rest is a path of any depth -> MongoDB map field
    default_order: list[OrderKey]

    def resolve(self, path: Path, field_name: str) -> Field:
        head, rest = path.segments[0], path.segments[1:]
        if not rest:
            found = self.fields.get(head)
            if found is not None:
                return found
        if head in self.maps and len(rest) == 1:
            mongo_map, kind = self.maps[head]
            return Field(f"{mongo_map}.{encode_key(rest[0])}", kind)
        if head in self.nested and rest:
            return Field(f"{self.nested[head]}.{encode_path(rest)}", Kind.ANY)
        dotted = ".".join(path.segments[:2])
        found = self.fields.get(dotted) if len(path.segments) == 2 else None
        if found is not None:
            return found
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


VERSION_SCHEMA = Schema(
    fields={
        "number": Field("number", Kind.NUMBER),
        "state": Field("state", Kind.STATE),
        "create_time": Field("create_time", Kind.TIME),
        "update_time": Field("update_time", Kind.TIME),
        "create_actor": Field("create_actor", Kind.STRING),
        "description": Field("description", Kind.STRING),
        "model_id": Field("model_id", Kind.STRING),
        "namespace": Field("namespace", Kind.STRING),
        "manifest_digest": Field("manifest_digest", Kind.STRING),
        "lineage.training_run_id": Field("lineage.training_run_id", Kind.STRING),
        "lineage.training_run_url": Field("lineage.training_run_url", Kind.STRING),
        "lineage.source_repository": Field("lineage.source_repository", Kind.STRING),
        "lineage.source_commit": Field("lineage.source_commit", Kind.STRING),
        "lineage.parent_model_version": Field("lineage.parent_model_version", Kind.STRING),
    },
    maps={"tags": ("t", Kind.STRING), "metrics": ("m", Kind.NUMBER)},
    nested={"params": "p"},
    default_order=[OrderKey(Path(("number",)))],
)

MODEL_SCHEMA = Schema(
    fields={
        "model_id": Field("model_id", Kind.STRING),
        "display_name": Field("display_name", Kind.STRING),
        "description": Field("description", Kind.STRING),
        "owner": Field("owner", Kind.STRING),
        "create_actor": Field("create_actor", Kind.STRING),
        "create_time": Field("create_time", Kind.TIME),
        "update_time": Field("update_time", Kind.TIME),
        "latest_version_number": Field("latest_version_number", Kind.NUMBER),
    },
    maps={"labels": ("l", Kind.STRING)},
    nested={},
    default_order=[OrderKey(Path(("model_id",)))],
)

_OPERATORS = {Op.LT: "$lt", Op.LE: "$lte", Op.GT: "$gt", Op.GE: "$gte"}


def _value(field: Field, value: Any, path: Path, field_name: str) -> Any:
    """The value as stored for this field, or InvalidArgument when it cannot match the field's type."""

    def wrong(expected: str) -> InvalidArgument:
        return InvalidArgument(
            field_name,
            f"{path} holds {expected}; {value!r} cannot be compared with it",
            reason="INVALID_FILTER",
        )

    if field.kind == Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, float):
            raise wrong("numbers")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if field.kind == Kind.STRING:
        if not isinstance(value, str):
            raise wrong('text (quote the value: "...")')
        return value
    if field.kind == Kind.STATE:
        states = [s.value for s in VersionState]
        if not isinstance(value, str) or value.upper() not in states:
            raise InvalidArgument(
                field_name, f"state is one of {', '.join(states)}, not {value!r}", reason="INVALID_FILTER"
            )
        return value.upper()
    if field.kind == Kind.TIME:
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


class FilterCompiler:
    def __init__(self, schema: Schema, field_name: str = "filter"):
        self._schema = schema
        self._field_name = field_name

    def compile(self, expr: Expr | None) -> Document:
        return {} if expr is None else self._compile(expr)

    def _compile(self, expr: Expr) -> Document:  # noqa: PLR0911 - one return per kind of node
        if isinstance(expr, And):
            return {"$and": [self._compile(e) for e in expr.items]}
        if isinstance(expr, Or):
            return {"$or": [self._compile(e) for e in expr.items]}
        if isinstance(expr, Not):
            return {"$nor": [self._compile(expr.item)]}
        field = self._schema.resolve(expr.path, self._field_name)
        if isinstance(expr, In):
            values = [_value(field, v, expr.path, self._field_name) for v in expr.values]
            return {field.path: {"$in": values}}
        if isinstance(expr, StartsWith):
            if field.kind not in (Kind.STRING, Kind.ANY):
                raise InvalidArgument(
                    self._field_name,
                    f"STARTS_WITH applies to text; {expr.path} is not",
                    reason="INVALID_FILTER",
                )
            # re.escape makes the prefix a literal: no user-controlled regex syntax survives.
            return {field.path: {"$regex": "^" + re.escape(expr.prefix)}}
        value = _value(field, expr.value, expr.path, self._field_name)
        if expr.op is Op.EQ:
            return {field.path: value}
        if expr.op is Op.NE:
            return {field.path: {"$exists": True, "$ne": value}}
        return {field.path: {_OPERATORS[expr.op]: value}}


# Keyset pagination over arbitrary sort keys.
#
# MongoDB orders values of different types by type: null/missing < numbers < strings < booleans
# < dates. A page ends at a row whose sort values are known; the next page starts strictly after
# them in that order, which for one key is: a greater value of the same type, or any value of a
# later type. `_id` breaks ties, so the order is total.
_TYPE_ORDER = ["null", "number", "string", "bool", "date"]


def _type_of(value: Any) -> str:
    kind = bson_type(value)
    # Lists (multi-valued params) and maps page as if missing; documented.
    return kind if kind in _TYPE_ORDER else "null"


def _beyond(path: str, value: Any, descending: bool) -> Document:
    rank = _TYPE_ORDER.index(_type_of(value))
    if _type_of(value) == "null":
        value = None
    later = _TYPE_ORDER[rank + 1 :] if not descending else _TYPE_ORDER[:rank]
    options: list[Document] = []
    if value is not None:
        options.append({path: {"$lt" if descending else "$gt": value}})
    typed = [t for t in later if t != "null"]
    if typed:
        options.append({path: {"$type": typed}})
    if descending and "null" in later:
        options.append({path: None})
    if not options:
        return {"_id": {"$exists": False}}  # nothing comes after
    return options[0] if len(options) == 1 else {"$or": options}


def _equal(path: str, value: Any) -> Document:
    return {path: None if _type_of(value) == "null" else value}


def keyset_after(paths: list[tuple[str, bool]], last_values: list[Any], last_id: str) -> Document:
    """Rows strictly after the one with `last_values` (and `_id` `last_id`) in the sort order."""
    options: list[Document] = []
    for i, (path, descending) in enumerate(paths):
        prefix = [_equal(p, v) for (p, _), v in zip(paths[:i], last_values[:i], strict=True)]
        options.append({"$and": [*prefix, _beyond(path, last_values[i], descending)]})
    ties = [_equal(p, v) for (p, _), v in zip(paths, last_values, strict=True)]
    options.append({"$and": [*ties, {"_id": {"$gt": last_id}}]})
    return {"$or": options}


def sort_paths(schema: Schema, order: list[OrderKey], field_name: str = "order_by") -> list[tuple[str, bool]]:
    keys = order or schema.default_order
    return [(schema.resolve(k.path, field_name).path, k.descending) for k in keys]


def read_path(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# Page-token encoding of sort values (JSON has no dates).
_TAGS = {"number": "u", "string": "s", "bool": "b"}


def encode_sort_value(value: Any) -> list[Any]:
    kind = _type_of(value)
    if kind == "date":
        return ["t", value.isoformat()]
    if kind == "null":
        return ["n"]
    return [_TAGS[kind], value]


def decode_sort_value(item: Any, field_name: str = "page_token") -> Any:
    try:
        tag = item[0]
        if tag == "n":
            return None
        value = item[1]
        if tag == "t":
            return datetime.fromisoformat(value)
        expected = {"u": (int, float), "s": (str,), "b": (bool,)}[tag]
        if not isinstance(value, expected):
            raise TypeError(tag)
        return value
    except (KeyError, IndexError, TypeError, ValueError):
        raise InvalidArgument(field_name, "is not a token returned by this method") from None
