"""MongoDB query semantics for the documents held in the in-process replica (store/replica.py).

Only what `store.query` emits is implemented: `$and`, `$or`, `$nor`, implicit equality,
`$gt`/`$gte`/`$lt`/`$lte`, `$ne`, `$exists`, `$in`, `$regex` (an anchored literal prefix) and
`$type`, with MongoDB's rules: comparisons only within a type bracket, a missing field equals
null, an array matches when the array or any element does, booleans are not numbers, and sorting
orders types null < numbers < strings < booleans < dates, arrays by their smallest element
ascending and largest descending. Anything else raises, so the compiler and this module cannot
drift apart silently (tests/unit/test_matcher.py checks both against each other).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cmp_to_key
from typing import Any

Document = dict[str, Any]
_MISSING = object()
_TYPE_RANK = {"null": 0, "number": 1, "string": 2, "bool": 5, "date": 6}


def _type(value: Any) -> str:  # noqa: PLR0911 - one return per BSON type
    if value is None or value is _MISSING:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, list):
        return "array"
    return "object"


def _read(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _equal(a: Any, b: Any) -> bool:
    if _type(a) != _type(b):
        return False
    return bool(a == b)


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1 within one type bracket, None across brackets (MongoDB then never matches)."""
    if _type(a) != _type(b) or _type(a) in ("null", "array", "object"):
        return None
    return int(a > b) - int(a < b)


def _candidates(value: Any) -> list[Any]:
    # A field holding an array matches a condition when the array or any element matches.
    if isinstance(value, list):
        return [value, *value]
    return [value]


def _operator(value: Any, op: str, operand: Any) -> bool:  # noqa: PLR0911 - one return per operator
    if op == "$exists":
        return (value is not _MISSING) == bool(operand)
    if op == "$ne":
        return not _operator(value, "$eq", operand)
    if op == "$eq":
        if operand is None:
            return value is _MISSING or value is None or (isinstance(value, list) and None in value)
        return any(_equal(v, operand) for v in _candidates(value))
    if op == "$in":
        return any(_operator(value, "$eq", item) for item in operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        wanted = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (-1, 0)}[op]
        return any(_compare(v, operand) in wanted for v in _candidates(value))
    if op == "$regex":
        pattern = re.compile(operand)
        return any(isinstance(v, str) and pattern.search(v) is not None for v in _candidates(value))
    if op == "$type":
        names = operand if isinstance(operand, list) else [operand]
        return value is not _MISSING and any(_type(v) in names for v in _candidates(value))
    raise ValueError(f"the replica cannot evaluate {op}")


def matches(doc: Document, query: Document) -> bool:
    for key, condition in query.items():
        if key == "$and":
            ok = all(matches(doc, q) for q in condition)
        elif key == "$or":
            ok = any(matches(doc, q) for q in condition)
        elif key == "$nor":
            ok = not any(matches(doc, q) for q in condition)
        elif key.startswith("$"):
            raise ValueError(f"the replica cannot evaluate {key}")
        else:
            value = _read(doc, key)
            if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
                ok = all(_operator(value, op, operand) for op, operand in condition.items())
            else:
                ok = _operator(value, "$eq", condition)
        if not ok:
            return False
    return True


def _sort_value(value: Any, descending: bool) -> tuple[int, Any]:
    if isinstance(value, list):
        if not value:
            return (0, None)
        keys = [_sort_value(v, descending) for v in value]
        return max(keys, key=cmp_to_key(_cmp_keys)) if descending else min(keys, key=cmp_to_key(_cmp_keys))
    kind = _type(value)
    return (_TYPE_RANK.get(kind, 3), None if kind == "null" else value)


def _cmp_keys(a: tuple[int, Any], b: tuple[int, Any]) -> int:
    if a[0] != b[0]:
        return (a[0] > b[0]) - (a[0] < b[0])
    if a[1] is None:
        return 0
    return int(a[1] > b[1]) - int(a[1] < b[1])


def sort_documents(docs: list[Document], sort: list[tuple[str, int]]) -> list[Document]:
    """Documents in MongoDB's order for a sort spec of (path, 1 | -1) pairs."""

    def compare(x: Document, y: Document) -> int:
        for path, direction in sort:
            descending = direction < 0
            a = _read(x, path)
            b = _read(y, path)
            result = _cmp_keys(_sort_value(a, descending), _sort_value(b, descending))
            if result:
                return -result if descending else result
        return 0

    return sorted(docs, key=cmp_to_key(compare))
