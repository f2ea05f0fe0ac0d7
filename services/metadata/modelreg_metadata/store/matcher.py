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
from collections.abc import Callable
from datetime import datetime
from functools import cmp_to_key
from typing import Any

Document = dict[str, Any]
_MISSING = object()
_TYPE_RANK = {"null": 0, "number": 1, "string": 2, "bool": 5, "date": 6}


def bson_type(value: Any) -> str:  # noqa: PLR0911 - one return per BSON type
    """The BSON type family of a value, as MongoDB compares and sorts them."""
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
    return _reader(path)(doc)


Reader = Callable[[Document], Any]
Predicate = Callable[[Document], bool]


def _reader(path: str) -> Reader:
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda doc: doc.get(key, _MISSING)
    if len(parts) == 2:  # `t.<hex>`, `m.<hex>`, `lineage.x`: the common case, without a loop
        outer, inner = parts

        def read_two(doc: Document) -> Any:
            value = doc.get(outer)
            return value.get(inner, _MISSING) if isinstance(value, dict) else _MISSING

        return read_two

    def read(doc: Document) -> Any:
        value: Any = doc
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return read


def _equal(a: Any, b: Any) -> bool:
    if bson_type(a) != bson_type(b):
        return False
    return bool(a == b)


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1 within one type bracket, None across brackets (MongoDB then never matches)."""
    if bson_type(a) != bson_type(b) or bson_type(a) in ("null", "array", "object"):
        return None
    return int(a > b) - int(a < b)


def _candidates(value: Any) -> list[Any]:
    # A field holding an array matches a condition when the array or any element matches.
    if isinstance(value, list):
        return [value, *value]
    return [value]


def _value_test(op: str, operand: Any) -> Callable[[Any], bool]:  # noqa: PLR0911 - one per operator
    """A test of a field's value (possibly _MISSING) for one operator."""
    if op == "$exists":
        wanted = bool(operand)
        return lambda value: (value is not _MISSING) == wanted
    if op == "$ne":
        equal = _value_test("$eq", operand)
        return lambda value: not equal(value)
    if op == "$eq":
        if operand is None:
            return lambda value: (
                value is _MISSING or value is None or (isinstance(value, list) and None in value)
            )
        kind = bson_type(operand)

        def eq(value: Any) -> bool:
            if type(value) is type(operand) and kind != "array":
                return bool(value == operand)  # the common case: same scalar type
            return any(_equal(v, operand) for v in _candidates(value))

        return eq
    if op == "$in":
        tests = [_value_test("$eq", item) for item in operand]
        return lambda value: any(test(value) for test in tests)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        outcomes = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (-1, 0)}[op]
        return lambda value: any(_compare(v, operand) in outcomes for v in _candidates(value))
    if op == "$regex":
        pattern = re.compile(operand)
        return lambda value: any(
            isinstance(v, str) and pattern.search(v) is not None for v in _candidates(value)
        )
    if op == "$type":
        names = operand if isinstance(operand, list) else [operand]
        return lambda value: value is not _MISSING and any(bson_type(v) in names for v in _candidates(value))
    raise ValueError(f"the replica cannot evaluate {op}")


def _operator(value: Any, op: str, operand: Any) -> bool:
    return _value_test(op, operand)(value)


def predicate(query: Document) -> Predicate:
    """The query compiled once into a function of a document (a search tests many documents)."""
    tests: list[Predicate] = []
    for key, condition in query.items():
        if key in ("$and", "$or", "$nor"):
            tests.append(_combine(key, [predicate(q) for q in condition]))
            continue
        if key.startswith("$"):
            raise ValueError(f"the replica cannot evaluate {key}")
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            value_tests = [_value_test(op, operand) for op, operand in condition.items()]
        else:
            value_tests = [_value_test("$eq", condition)]
        tests.append(_field_test(_reader(key), value_tests))
    if len(tests) == 1:
        return tests[0]
    return _combine("$and", tests)


def _combine(kind: str, parts: list[Predicate]) -> Predicate:
    # Plain loops: a search calls these for every candidate document.
    if kind == "$and":

        def all_of(doc: Document) -> bool:
            for part in parts:  # noqa: SIM110 - a loop beats a generator in this hot path
                if not part(doc):
                    return False
            return True

        return all_of

    def any_of(doc: Document) -> bool:
        for part in parts:  # noqa: SIM110 - a loop beats a generator in this hot path
            if part(doc):
                return True
        return False

    if kind == "$or":
        return any_of
    return lambda doc: not any_of(doc)


def _field_test(read: Reader, value_tests: list[Callable[[Any], bool]]) -> Predicate:
    if len(value_tests) == 1:
        only = value_tests[0]
        return lambda doc: only(read(doc))

    def test(doc: Document) -> bool:
        value = read(doc)
        for value_test in value_tests:  # noqa: SIM110 - a loop beats a generator in this hot path
            if not value_test(value):
                return False
        return True

    return test


def matches(doc: Document, query: Document) -> bool:
    return predicate(query)(doc)


def _sort_value(value: Any, descending: bool) -> tuple[int, Any]:
    if isinstance(value, list):
        if not value:
            return (0, None)
        keys = [_sort_value(v, descending) for v in value]
        return max(keys, key=cmp_to_key(_cmp_keys)) if descending else min(keys, key=cmp_to_key(_cmp_keys))
    kind = bson_type(value)
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
