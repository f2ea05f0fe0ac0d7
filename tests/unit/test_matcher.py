"""The replica's matcher follows MongoDB's rules for what the filter compiler emits.

The integration tests run every search both through the replica and through FerretDB; these pin
the rules themselves: type brackets, missing fields, arrays, and the sort order across types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from modelreg_metadata.filtering import parse_filter, parse_order_by
from modelreg_metadata.search import VERSION_SCHEMA
from modelreg_metadata.store.matcher import matches, sort_documents
from modelreg_metadata.store.query import FilterCompiler, keyset_after, sort_paths

DOCS: list[dict[str, Any]] = [
    {"_id": "a", "n": 1, "s": "x", "arr": [1, 2], "b": True},
    {"_id": "b", "n": 2.5, "s": "y", "arr": [3]},
    {"_id": "c", "s": "10"},
    {"_id": "d", "n": None, "nested": {"k": 5}},
    {"_id": "e", "n": "text", "b": False, "t": datetime(2026, 1, 1, tzinfo=UTC)},
]


def ids(query: dict[str, Any]) -> list[str]:
    return [doc["_id"] for doc in DOCS if matches(doc, query)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"n": 1}, ["a"]),
        ({"n": 1.0}, ["a"]),  # numbers compare across int and float
        ({"b": 1}, []),  # a boolean is not a number
        ({"n": {"$gt": 1}}, ["b"]),  # comparisons stay within the number bracket ("text" is out)
        ({"s": {"$gt": "9"}}, ["a", "b"]),  # text compares by code point: "10" < "9" < "x"
        ({"n": None}, ["c", "d"]),  # null matches missing and null
        ({"n": {"$exists": True}}, ["a", "b", "d", "e"]),
        ({"n": {"$exists": True, "$ne": 1}}, ["b", "d", "e"]),
        ({"arr": 2}, ["a"]),  # an array matches when an element does
        ({"arr": {"$gte": 3}}, ["b"]),
        ({"arr": {"$in": [9, 1]}}, ["a"]),
        ({"nested.k": 5}, ["d"]),
        ({"s": {"$regex": "^1"}}, ["c"]),
        ({"n": {"$type": ["string", "bool"]}}, ["e"]),
        ({"$or": [{"n": 1}, {"s": "y"}]}, ["a", "b"]),
        ({"$nor": [{"n": 1}, {"s": "y"}]}, ["c", "d", "e"]),
        ({"$and": [{"n": {"$gt": 0}}, {"n": {"$lt": 2}}]}, ["a"]),
        ({"t": {"$gt": datetime(2025, 1, 1, tzinfo=UTC)}}, ["e"]),
    ],
)
def test_mongodb_semantics(query: dict[str, Any], expected: list[str]) -> None:
    assert ids(query) == expected


def test_an_operator_it_does_not_know_is_an_error_not_a_silent_miss() -> None:
    with pytest.raises(ValueError, match=r"\$where"):
        matches(DOCS[0], {"$where": "1"})
    with pytest.raises(ValueError, match=r"\$elemMatch"):
        matches(DOCS[0], {"arr": {"$elemMatch": {"$gt": 1}}})


def test_sort_orders_types_like_mongodb() -> None:
    order = [d["_id"] for d in sort_documents(DOCS, [("n", 1), ("_id", 1)])]
    assert order == ["c", "d", "a", "b", "e"]  # missing/null, numbers, text
    order = [d["_id"] for d in sort_documents(DOCS, [("n", -1), ("_id", 1)])]
    assert order == ["e", "b", "a", "c", "d"]
    # Arrays sort by their smallest element ascending, largest descending.
    assert [d["_id"] for d in sort_documents(DOCS[:2], [("arr", 1)])] == ["a", "b"]
    assert [d["_id"] for d in sort_documents(DOCS[:2], [("arr", -1)])] == ["b", "a"]


def test_keyset_conditions_continue_exactly_after_the_last_row() -> None:
    """Paging through any order with the compiler's keyset conditions visits every row once."""
    docs = [
        {"_id": f"v{i}", "m": {"kx": value}, "number": i}
        for i, value in enumerate([0.5, None, 0.9, 0.5, "n/a", True, 0.1, None])
    ]
    for order_by in ("metrics.x", "metrics.x desc", "number desc"):
        sort = sort_paths(VERSION_SCHEMA, parse_order_by(order_by))
        sort = [("m.kx" if path.startswith("m.") else path, desc) for path, desc in sort]
        spec = [(path, -1 if desc else 1) for path, desc in sort] + [("_id", 1)]
        everything = [d["_id"] for d in sort_documents(docs, spec)]
        seen: list[str] = []
        after: dict[str, Any] = {}
        while True:
            page = sort_documents([d for d in docs if matches(d, after)], spec)[:3]
            if not page:
                break
            seen += [d["_id"] for d in page]
            last = page[-1]
            values = [last["m"].get("kx") if p == "m.kx" else last[p] for p, _ in sort]
            after = keyset_after(sort, values, last["_id"])
        assert seen == everything, order_by


def test_compiled_filters_run_on_the_matcher() -> None:
    doc = {"_id": "x", "t": {}, "m": {}, "state": "READY", "number": 3}
    compiled = FilterCompiler(VERSION_SCHEMA).compile(parse_filter('state = "READY" AND NOT tags.team = "a"'))
    assert matches(doc, compiled)
