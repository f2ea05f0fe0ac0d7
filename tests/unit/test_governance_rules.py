"""Domain rules of the audit trail and governance, without servers: event diffs and replay, gates."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from modelreg_api.errors import FailedPrecondition, InvalidArgument
from modelreg_api.names import AliasName, ModelVersionName
from modelreg_metadata import governance
from modelreg_metadata.audit import events as audit_events
from modelreg_metadata.audit import replay
from modelreg_metadata.audit.events import Action
from modelreg_metadata.domain import (
    AliasProtection,
    Direction,
    ModelFile,
    ModelVersion,
    NoRegression,
    Review,
    ReviewDecision,
    ReviewState,
    VersionState,
)
from modelreg_metadata.faults import FaultPoint, Faults

NAME = ModelVersionName("ns", "m", 1)
ALIAS = AliasName("ns", "m", "production")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(**fields: object) -> ModelVersion:
    base = ModelVersion(name=NAME, uid="u", model_uid="mu", create_time=T0, create_actor="alice")
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_creation_carries_the_whole_state_and_updates_only_what_changed() -> None:
    created = version(tags={"a": "1", "k.x": "v"}, params={"lr": 0.1})
    before, after = audit_events.changes(None, created)
    assert before == {}
    assert after["tags"] == {"a": "1", "k.x": "v"}
    assert after["params"] == {"lr": 0.1}
    assert after["state"] == "PENDING"
    assert after["create_time"] == "2026-01-01T00:00:00Z"
    assert "etag" not in after
    assert "name" not in after

    changed = replace(created, tags={"a": "2", "new": "n", "k.x": "v"}, etag="e2")
    assert audit_events.changes(created, changed) == ({"tags": {"a": "1"}}, {"tags": {"a": "2", "new": "n"}})
    removed = replace(created, tags={"k.x": "v"})
    assert audit_events.changes(created, removed) == ({"tags": {"a": "1"}}, {"tags": {}})


def test_manifest_and_review_changes_list_only_what_changed() -> None:
    one = ModelFile("a.bin", 1, "0" * 64)
    two = ModelFile("b.bin", 2, "1" * 64)
    with_one = version(files=[one])
    with_two = replace(with_one, files=[one, two], manifest_digest="d2")
    before, after = audit_events.changes(with_one, with_two)
    assert before == {"files": [], "manifest_digest": ""}
    assert [f["path"] for f in after["files"]] == ["b.bin"]

    step = Review(ReviewDecision.SUBMITTED, "alice", T0, "c")
    submitted = replace(with_one, review_state=ReviewState.PENDING, reviews=[step])
    before, after = audit_events.changes(with_one, submitted)
    assert before == {"review_state": "NOT_SUBMITTED"}
    assert after["reviews"] == [
        {"decision": "SUBMITTED", "actor": "alice", "time": "2026-01-01T00:00:00Z", "comment": "c"}
    ]


def test_replaying_the_events_rebuilds_every_intermediate_state() -> None:
    states = [version(tags={"a": "1"}, metrics={"acc": 0.5})]
    states.append(replace(states[-1], tags={"b": "2"}, metrics={"acc": 0.7, "f1": 0.6}))
    states.append(replace(states[-1], files=[ModelFile("w.bin", 3, "2" * 64)], manifest_digest="d"))
    states.append(replace(states[-1], files=[ModelFile("w.bin", 4, "3" * 64)], manifest_digest="e"))
    states.append(replace(states[-1], state=VersionState.READY))
    states.append(
        replace(
            states[-1],
            review_state=ReviewState.PENDING,
            reviews=[Review(ReviewDecision.SUBMITTED, "alice", T0, "")],
        )
    )
    events = [audit_events.new_event(Action.MODEL_VERSION_CREATED, NAME, None, states[0], T0)]
    events += [
        audit_events.new_event(Action.MODEL_VERSION_UPDATED, NAME, old, new, T0)
        for old, new in itertools.pairwise(states)
    ]
    replayed: audit_events.Json = {}
    for event, expected in zip(events, states, strict=True):
        replayed = (
            dict(event.after)
            if event.action == Action.MODEL_VERSION_CREATED
            else replay.apply(replayed, event)
        )
        rebuilt = replay.version_from_state(NAME, replayed, expected.update_time)
        assert rebuilt == replace(expected, etag="", aliases=[])


def protection(gate: str = "", **rules: Direction) -> AliasProtection:
    return AliasProtection(ALIAS, gate, tuple(NoRegression(m, d) for m, d in rules.items()))


def ready(**metrics: float) -> ModelVersion:
    return version(metrics=metrics, state=VersionState.READY, review_state=ReviewState.APPROVED)


def refusal(call: object) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_gate_outcomes() -> None:
    rules = protection("metrics.acc >= 0.9 AND NOT metrics.lat IN (13, 14)", lat=Direction.MINIMIZE)
    governance.admit(ALIAS, rules, ready(acc=0.95, lat=10), None)
    governance.admit(ALIAS, rules, ready(acc=0.95, lat=10), ready(acc=0.9, lat=10))  # equal is not worse

    failed = refusal(lambda: governance.admit(ALIAS, rules, ready(acc=0.8, lat=10), None))
    assert (failed.reason, failed.metadata["condition"], failed.metadata["candidate_value"]) == (
        "METRIC_GATE_FAILED",
        "metrics.acc >= 0.9",
        "0.8",
    )
    failed = refusal(lambda: governance.admit(ALIAS, rules, ready(acc=0.95, lat=13), None))
    assert failed.metadata["condition"] == "NOT metrics.lat IN (13, 14)"
    either = protection("metrics.acc > 0.99 OR metrics.lat < 5")
    failed = refusal(lambda: governance.admit(ALIAS, either, ready(acc=0.9, lat=10), None))
    assert failed.metadata["condition"] == "metrics.acc > 0.99"
    assert "metrics.lat < 5 with lat = 10" in failed.message
    failed = refusal(lambda: governance.admit(ALIAS, rules, ready(acc=0.95, lat=11), ready(lat=10)))
    assert (failed.reason, failed.metadata["candidate_value"], failed.metadata["current_value"]) == (
        "METRIC_REGRESSION",
        "11",
        "10",
    )
    failed = refusal(lambda: governance.admit(ALIAS, rules, ready(lat=1), None))
    assert (failed.reason, failed.metadata["metric"]) == ("METRIC_MISSING", "acc")
    failed = refusal(
        lambda: governance.admit(
            ALIAS, rules, replace(ready(acc=1, lat=1), review_state=ReviewState.REJECTED), None
        )
    )
    assert failed.reason == "PROTECTED_ALIAS_VERSION_NOT_APPROVED"


@pytest.mark.parametrize(
    "gate",
    [
        "params.lr > 1",
        "metrics.acc > 'x'",
        "metrics.acc = true",
        "metrics.a STARTS_WITH 'x'",
        "metrics.acc >",
    ],
)
def test_gates_compare_metrics_with_numbers_only(gate: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        governance.check_protection(protection(gate))
    assert caught.value.field == "protection.metric_gate"


def test_fault_points_parse_and_refuse_unknown_ones() -> None:
    assert Faults.parse("") == Faults()
    assert Faults.parse("crash-after-commit@ALIAS_MOVED") == Faults(
        FaultPoint.CRASH_AFTER_COMMIT, "ALIAS_MOVED"
    )
    with pytest.raises(ValueError, match="crash-after-event-insert"):
        Faults.parse("crash-sometime")
    Faults(FaultPoint.CRASH_AFTER_COMMIT, "ALIAS_MOVED").reached(
        FaultPoint.CRASH_AFTER_COMMIT, "MODEL_CREATED"
    )  # no crash
