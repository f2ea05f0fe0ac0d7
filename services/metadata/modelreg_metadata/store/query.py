"""Searches (search.py) -> MongoDB query documents, sort specs and keyset conditions.

Safety: operators in the output come only from this module's constants; user text becomes
values, or field names only through `encode_key` (hex), never anything MongoDB interprets.

Semantics (docs/filter-language.md, search.py):
- comparisons follow MongoDB's type bracketing: `params.lr > 0.01` matches numbers only;
- `!=` and `NOT IN` match resources that HAVE the key with another value (a missing key never
  matches a comparison, so `NOT (x = 1)` is the way to include resources without x);
- a list-valued param matches when any element matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from modelreg_metadata.filtering import Expr, Op, OrderKey
from modelreg_metadata.search import (
    TYPE_ORDER,
    AllOf,
    AnyOf,
    Condition,
    Cursor,
    Field,
    Negation,
    OneOf,
    Prefix,
    Schema,
    Sort,
    sort_type,
)
from modelreg_metadata.store.documents import Document, encode_key, encode_path

# Where the documents keep each map of user keys (by the hex of the key) and the params' paths.
_MAPS = {"tags": "t", "metrics": "m", "labels": "l"}
_NESTED = {"params": "p"}
_OPERATORS = {Op.LT: "$lt", Op.LE: "$lte", Op.GT: "$gt", Op.GE: "$gte"}


def field_path(field: Field) -> str:
    """The document field holding `field`."""
    if field.name in _MAPS:
        return f"{_MAPS[field.name]}.{encode_key(field.key[0])}"
    if field.name in _NESTED:
        return f"{_NESTED[field.name]}.{encode_path(field.key)}"
    return field.name


def compile_condition(condition: Condition | None) -> Document:
    return {} if condition is None else _compile(condition)


def _compile(condition: Condition) -> Document:  # noqa: PLR0911 - one return per kind of node
    if isinstance(condition, AllOf):
        return {"$and": [_compile(c) for c in condition.items]}
    if isinstance(condition, AnyOf):
        return {"$or": [_compile(c) for c in condition.items]}
    if isinstance(condition, Negation):
        return {"$nor": [_compile(condition.item)]}
    path = field_path(condition.field)
    if isinstance(condition, OneOf):
        return {path: {"$in": list(condition.values)}}
    if isinstance(condition, Prefix):
        # re.escape makes the prefix a literal: no user-controlled regex syntax survives.
        return {path: {"$regex": "^" + re.escape(condition.prefix)}}
    if condition.op is Op.EQ:
        return {path: condition.value}
    if condition.op is Op.NE:
        return {path: {"$exists": True, "$ne": condition.value}}
    return {path: {_OPERATORS[condition.op]: condition.value}}


def sort_spec(order: tuple[Sort, ...]) -> list[tuple[str, bool]]:
    """(document path, descending) for each sort key."""
    return [(field_path(key.field), key.descending) for key in order]


class FilterCompiler:
    """A filter's AST bound to a resource's fields and compiled, in one step."""

    def __init__(self, schema: Schema, field_name: str = "filter"):
        self._schema = schema
        self._field_name = field_name

    def compile(self, expr: Expr | None) -> Document:
        return compile_condition(self._schema.bind(expr, self._field_name))


def sort_paths(schema: Schema, order: list[OrderKey], field_name: str = "order_by") -> list[tuple[str, bool]]:
    return sort_spec(schema.order(order, field_name))


# Keyset pagination over arbitrary sort keys.
#
# MongoDB orders values of different types by type: null/missing < numbers < strings < booleans
# < dates. A page ends at a row whose sort values are known; the next page starts strictly after
# them in that order, which for one key is: a greater value of the same type, or any value of a
# later type. `_id` breaks ties, so the order is total.
def _beyond(path: str, value: Any, descending: bool) -> Document:
    rank = TYPE_ORDER.index(sort_type(value))
    if sort_type(value) == "null":
        value = None
    later = TYPE_ORDER[rank + 1 :] if not descending else TYPE_ORDER[:rank]
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
    return {path: None if sort_type(value) == "null" else value}


def keyset_after(paths: list[tuple[str, bool]], last_values: Sequence[Any], last_id: str) -> Document:
    """Rows strictly after the one with `last_values` (and `_id` `last_id`) in the sort order."""
    options: list[Document] = []
    for i, (path, descending) in enumerate(paths):
        prefix = [_equal(p, v) for (p, _), v in zip(paths[:i], last_values[:i], strict=True)]
        options.append({"$and": [*prefix, _beyond(path, last_values[i], descending)]})
    ties = [_equal(p, v) for (p, _), v in zip(paths, last_values, strict=True)]
    options.append({"$and": [*ties, {"_id": {"$gt": last_id}}]})
    return {"$or": options}


def read_path(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def split_page(
    docs: list[Document], limit: int, sort: list[tuple[str, bool]]
) -> tuple[list[Document], Cursor | None]:
    """A page's documents from up to `limit` + 1 found in order, and where the next page starts
    (after the page's last document), or None when no document was found beyond the page."""
    if len(docs) <= limit:
        return docs, None
    shown = docs[:limit]
    last = shown[-1]
    return shown, Cursor(tuple(read_path(last, path) for path, _ in sort), last["_id"])
