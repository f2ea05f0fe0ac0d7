"""The filter language: parsing into the typed AST, errors with positions, compiling to MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from modelreg_api.errors import InvalidArgument
from modelreg_metadata.filtering import (
    MAX_NESTING,
    And,
    Compare,
    In,
    Not,
    Op,
    Or,
    OrderKey,
    Path,
    StartsWith,
    parse_filter,
    parse_order_by,
)
from modelreg_metadata.search import MODEL_SCHEMA, VERSION_SCHEMA
from modelreg_metadata.store.documents import encode_key, encode_path
from modelreg_metadata.store.query import FilterCompiler, keyset_after, sort_paths


def p(*segments: str) -> Path:
    return Path(segments)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.accuracy > 0.9", Compare(p("metrics", "accuracy"), Op.GT, 0.9)),
        ('tags.team = "a"', Compare(p("tags", "team"), Op.EQ, "a")),
        ("tags.team != 'b'", Compare(p("tags", "team"), Op.NE, "b")),
        ("params.optimizer.lr <= 1e-3", Compare(p("params", "optimizer", "lr"), Op.LE, 0.001)),
        ("params.`learning.rate` >= -.5", Compare(p("params", "learning.rate"), Op.GE, -0.5)),
        ("metrics.`val loss` < 3", Compare(p("metrics", "val loss"), Op.LT, 3.0)),
        ("tags.équipe = 'x'", Compare(p("tags", "équipe"), Op.EQ, "x")),
        ("params.layers.0 = 64", Compare(p("params", "layers", "0"), Op.EQ, 64.0)),
        ("params.use_bias = true", Compare(p("params", "use_bias"), Op.EQ, True)),
        ('model_id STARTS_WITH "fraud-"', StartsWith(p("model_id"), "fraud-")),
        ('state in ("READY", "ARCHIVED")', In(p("state"), ("READY", "ARCHIVED"))),
        (
            "a = 1 AND b = 2 OR c = 3",
            Or(
                (And((Compare(p("a"), Op.EQ, 1.0), Compare(p("b"), Op.EQ, 2.0))), Compare(p("c"), Op.EQ, 3.0))
            ),
        ),
        (
            "a = 1 AND (b = 2 OR NOT c = 3)",
            And(
                (
                    Compare(p("a"), Op.EQ, 1.0),
                    Or((Compare(p("b"), Op.EQ, 2.0), Not(Compare(p("c"), Op.EQ, 3.0)))),
                )
            ),
        ),
        ('tags.x = "say \\"hi\\""', Compare(p("tags", "x"), Op.EQ, 'say "hi"')),
        ("   ", None),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.a >", "expected a value"),
        ("metrics.a = 1 AND", "expected a field name"),
        ("(a = 1", "expected ')'"),
        ("a == 1", "expected a value"),
        ('a = "x', "unterminated"),
        ("AND = 1", "expected a field name"),
        ("a IN ()", "expected a value"),
        ("a = 1 b = 2", "expected AND, OR"),
        ("a ~ 1", "unexpected character"),
        ("a = 1e999", "not a finite number"),
        ("a STARTS_WITH 3", "quoted prefix"),
    ],
)
def test_parse_errors_name_the_filter_and_the_position(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_filter(text)
    assert caught.value.field == "filter"
    assert message in caught.value.description
    assert "at position" in caught.value.description


def test_order_by() -> None:
    assert parse_order_by("metrics.acc desc, number") == [
        OrderKey(p("metrics", "acc"), descending=True),
        OrderKey(p("number")),
    ]
    assert parse_order_by("") == []
    with pytest.raises(InvalidArgument) as caught:
        parse_order_by("number sideways")
    assert caught.value.field == "order_by"


def compile_version(text: str) -> dict[str, object]:
    return FilterCompiler(VERSION_SCHEMA).compile(parse_filter(text))


def test_compiles_maps_to_hex_field_names_and_values_stay_values() -> None:
    acc = "m." + encode_key("accuracy")
    assert compile_version("metrics.accuracy > 0.9") == {acc: {"$gt": 0.9}}
    assert compile_version('tags.`$where` = "$gt"') == {"t." + encode_key("$where"): "$gt"}
    assert compile_version("params.optimizer.lr = 0.01") == {"p." + encode_path(("optimizer", "lr")): 0.01}
    assert compile_version("params.layers = 64") == {"p." + encode_path(("layers",)): 64}
    # No user text ever appears as a key: every key is ours or hex.
    compiled = compile_version(
        'tags.`a.b` = "x" OR metrics.`$ne` != 1 OR NOT params.`{"$gt": 1}` IN (1, "y")'
    )

    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return [k for k, v in value.items() for k in [k, *keys(v)]]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    for key in keys(compiled):
        assert key in {"$or", "$and", "$nor", "$in", "$exists", "$ne"} or key[:2] in ("t.", "m.", "p."), key
        assert "$" not in key[1:] or key.startswith("$"), key


def test_compiles_fields_with_their_types() -> None:
    assert compile_version("number >= 3") == {"number": {"$gte": 3}}
    assert compile_version("state = 'ready'") == {"state": "READY"}
    assert compile_version('create_time > "2026-01-31T12:00:00Z"') == {
        "create_time": {"$gt": datetime(2026, 1, 31, 12, tzinfo=UTC)}
    }
    assert compile_version('model_id STARTS_WITH "a.b"') == {"model_id": {"$regex": "^a\\.b"}}
    assert compile_version("tags.team != 'a'") == {"t." + encode_key("team"): {"$exists": True, "$ne": "a"}}
    assert FilterCompiler(MODEL_SCHEMA).compile(parse_filter("labels.task = 'nlp'")) == {
        "l." + encode_key("task"): "nlp"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope = 1", "unknown field nope"),
        ("metrics.acc = 'high'", "holds numbers"),
        ("tags.team = 1", "holds text"),
        ("state = 'DONE'", "state is one of"),
        ("create_time > 'yesterday'", "holds timestamps"),
        ("number STARTS_WITH '1'", "STARTS_WITH applies to text"),
        ("metrics.a.b > 1", "write it as metrics.`a.b`"),
    ],
)
def test_compile_errors_name_the_filter(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_version(text)
    assert caught.value.field == "filter"
    assert message in caught.value.description


def test_keyset_condition_covers_later_types_and_ties() -> None:
    sort = sort_paths(VERSION_SCHEMA, parse_order_by("metrics.acc desc"))
    path = sort[0][0]
    condition = keyset_after(sort, [0.5], "ns/m/3")
    assert condition == {
        "$or": [
            {"$and": [{"$or": [{path: {"$lt": 0.5}}, {path: None}]}]},
            {"$and": [{path: 0.5}, {"_id": {"$gt": "ns/m/3"}}]},
        ]
    }
    # After a row without the key (missing sorts first ascending), every row with it follows.
    ascending = sort_paths(VERSION_SCHEMA, parse_order_by("params.x"))
    after_missing = keyset_after(ascending, [None], "k")
    assert after_missing["$or"][0] == {
        "$and": [{ascending[0][0]: {"$type": ["number", "string", "bool", "date"]}}]
    }


def test_nesting_is_limited_with_the_position_of_the_level_too_deep() -> None:
    assert parse_filter("(" * MAX_NESTING + "name = 'x'" + ")" * MAX_NESTING) is not None
    assert parse_filter("NOT " * MAX_NESTING + "name = 'x'") is not None
    for text, position in (
        ("(" * 2000 + "name = 'x'" + ")" * 2000, MAX_NESTING + 1),
        ("NOT " * 1000 + "name = 'x'", 4 * MAX_NESTING + 1),
        ("(" * 4000, MAX_NESTING + 1),
    ):
        with pytest.raises(InvalidArgument) as caught:
            parse_filter(text)
        assert caught.value.field == "filter"
        assert caught.value.reason == "INVALID_FILTER"
        assert f"at position {position}" in caught.value.message
