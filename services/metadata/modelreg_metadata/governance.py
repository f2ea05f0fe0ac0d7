"""Governance rules: reviews, the four-eyes rule, and what a protected alias admits.

A protected alias may only point at a READY version whose review is APPROVED, that passes the
alias's metric gate (a condition over the candidate's metrics in the filter language) and that is
not worse than the version the alias points at now on the named metrics. Each refusal is a
FailedPrecondition whose reason names the rule and whose ErrorInfo metadata carries the values
compared, so a CI job can print exactly why a promotion was blocked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from modelreg_api.errors import FailedPrecondition, InvalidArgument, PermissionDenied, quoted
from modelreg_api.names import AliasName

from modelreg_metadata import domain
from modelreg_metadata.domain import (
    AliasProtection,
    Direction,
    ModelVersion,
    Namespace,
    ReviewState,
    VersionState,
)
from modelreg_metadata.filtering import And, Compare, Expr, In, Not, Op, Or, StartsWith, parse_filter

GATE_FIELD = "protection.metric_gate"


# Reviews


def check_comment(comment: str) -> None:
    domain.check_text("comment", comment, domain.MAX_COMMENT_CHARS)


def check_reviewable(version: ModelVersion) -> None:
    if version.deleted:
        raise FailedPrecondition(f"model version {version.name} is deleted", reason="VERSION_DELETED")
    if len(version.reviews) >= domain.MAX_REVIEWS_PER_VERSION:
        raise FailedPrecondition(
            f"model version {version.name} has {domain.MAX_REVIEWS_PER_VERSION} review steps, the limit",
            reason="TOO_MANY_REVIEWS",
        )


def check_submittable(version: ModelVersion) -> None:
    check_reviewable(version)
    if version.state is VersionState.ARCHIVED:
        raise FailedPrecondition(
            f"model version {version.name} is ARCHIVED; unarchive it before submitting it for review",
            reason="VERSION_ARCHIVED",
        )
    if version.review_state is ReviewState.PENDING:
        raise FailedPrecondition(
            f"model version {version.name} is already waiting for review", reason="REVIEW_ALREADY_PENDING"
        )
    if version.review_state is ReviewState.APPROVED:
        raise FailedPrecondition(
            f"model version {version.name} is already approved", reason="ALREADY_APPROVED"
        )


def check_decidable(version: ModelVersion) -> None:
    check_reviewable(version)
    if version.review_state is not ReviewState.PENDING:
        raise FailedPrecondition(
            f"model version {version.name} is not waiting for review (review state "
            f"{version.review_state.value}); submit it first",
            reason="REVIEW_NOT_PENDING",
        )


def check_approvable(version: ModelVersion, namespace: Namespace, approver: str) -> None:
    check_decidable(version)
    if version.state is not VersionState.READY:
        raise FailedPrecondition(
            f"model version {version.name} is {version.state.value}; only a READY (sealed) version "
            "can be approved",
            reason="VERSION_NOT_READY",
            metadata={"state": version.state.value},
        )
    if approver == version.create_actor and not namespace.allow_self_approval:
        raise PermissionDenied(
            f"{approver} created model version {version.name} and cannot also approve it: another "
            f"actor must (four eyes), unless namespace {namespace.name} sets allow_self_approval",
            reason="SELF_APPROVAL_NOT_ALLOWED",
            metadata={"actor": approver, "create_actor": version.create_actor},
        )


# Metric gates


def _leaves(expr: Expr) -> Iterator[Compare | In | StartsWith]:
    if isinstance(expr, And | Or):
        for item in expr.items:
            yield from _leaves(item)
    elif isinstance(expr, Not):
        yield from _leaves(expr.item)
    else:
        yield expr


def _metric(leaf: Compare | In | StartsWith) -> str:
    segments = leaf.path.segments
    if len(segments) != 2 or segments[0] != "metrics":
        raise InvalidArgument(
            GATE_FIELD,
            f"a metric gate compares metrics (`metrics.<key>`), not {leaf.path}",
            reason="INVALID_GATE",
        )
    return segments[1]


def parse_gate(text: str) -> Expr | None:
    """The gate's AST, checked to compare only metrics with numbers."""
    domain.check_text(GATE_FIELD, text, domain.MAX_GATE_CHARS)
    expr = parse_filter(text, GATE_FIELD)
    if expr is None:
        return None
    for leaf in _leaves(expr):
        domain.check_key(GATE_FIELD, _metric(leaf))
        values = leaf.values if isinstance(leaf, In) else (leaf.value,) if isinstance(leaf, Compare) else ()
        if isinstance(leaf, StartsWith) or any(
            isinstance(v, bool) or not isinstance(v, float) for v in values
        ):
            raise InvalidArgument(
                GATE_FIELD,
                f"metrics are numbers: {leaf.path} can only be compared with numbers",
                reason="INVALID_GATE",
            )
    return expr


def check_protection(protection: AliasProtection) -> None:
    parse_gate(protection.metric_gate)
    seen: set[str] = set()
    for i, rule in enumerate(protection.no_regression):
        domain.check_key(f"protection.no_regression[{i}].metric", rule.metric)
        if rule.metric in seen:
            raise InvalidArgument(
                f"protection.no_regression[{i}].metric", f"{quoted(rule.metric)} is listed twice"
            )
        seen.add(rule.metric)
    if len(protection.no_regression) > domain.MAX_METRICS:
        raise InvalidArgument("protection.no_regression", f"lists more than {domain.MAX_METRICS} metrics")


def _holds(expr: Expr, metrics: dict[str, float]) -> bool:
    if isinstance(expr, And):
        return all(_holds(e, metrics) for e in expr.items)
    if isinstance(expr, Or):
        return any(_holds(e, metrics) for e in expr.items)
    if isinstance(expr, Not):
        return not _holds(expr.item, metrics)
    value = metrics[_metric(expr)]
    if isinstance(expr, In):
        return any(value == v for v in expr.values)
    assert isinstance(expr, Compare)  # noqa: S101 - parse_gate admits no other leaf
    limit = expr.value
    assert isinstance(limit, float)  # noqa: S101 - parse_gate admits numbers only
    return {
        Op.EQ: value == limit,
        Op.NE: value != limit,
        Op.LT: value < limit,
        Op.LE: value <= limit,
        Op.GT: value > limit,
        Op.GE: value >= limit,
    }[expr.op]


Leaf = Compare | In | StartsWith


def _culprits(expr: Expr, metrics: dict[str, float], *, want: bool) -> list[tuple[Leaf, bool]]:
    """The comparisons that make `expr` differ from `want`, each with "it sits under a NOT"."""
    if isinstance(expr, Not):
        return [(leaf, not negated) for leaf, negated in _culprits(expr.item, metrics, want=not want)]
    if isinstance(expr, And | Or):
        # A false AND (a true OR) is decided by its children of that value; a false OR (a true
        # AND) by all of them: either way, by the children that differ from `want`.
        deciding = [e for e in expr.items if _holds(e, metrics) != want]
        return [c for e in deciding for c in _culprits(e, metrics, want=want)]
    return [(expr, False)] if _holds(expr, metrics) != want else []


def _text(leaf: Leaf, negated: bool = False) -> str:
    if isinstance(leaf, Compare):
        text = f"{leaf.path} {leaf.op.value} {_number(leaf.value)}"
    elif isinstance(leaf, In):
        text = f"{leaf.path} IN ({', '.join(_number(v) for v in leaf.values)})"
    else:
        text = f"{leaf.path} STARTS_WITH {leaf.prefix!r}"
    return f"NOT {text}" if negated else text


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return repr(value) if not isinstance(value, float) else str(value)


def admit(
    alias: AliasName, protection: AliasProtection, candidate: ModelVersion, current: ModelVersion | None
) -> None:
    """Raises FailedPrecondition unless the protected alias may point at `candidate`."""
    where = {"alias": str(alias), "model_version": str(candidate.name)}
    prefix = f"alias {alias.alias} is protected: {candidate.name}"
    if candidate.state is not VersionState.READY:
        raise FailedPrecondition(
            f"{prefix} is {candidate.state.value}; a protected alias points only at READY versions",
            reason="PROTECTED_ALIAS_VERSION_NOT_READY",
            metadata={**where, "state": candidate.state.value},
        )
    if candidate.review_state is not ReviewState.APPROVED:
        raise FailedPrecondition(
            f"{prefix} is not approved (review state {candidate.review_state.value}); a protected alias "
            "points only at approved versions",
            reason="PROTECTED_ALIAS_VERSION_NOT_APPROVED",
            metadata={**where, "review_state": candidate.review_state.value},
        )
    gate = parse_gate(protection.metric_gate)
    if gate is not None:
        for leaf in _leaves(gate):
            metric = _metric(leaf)
            if metric not in candidate.metrics:
                raise FailedPrecondition(
                    f"{prefix} has no metric {quoted(metric)}, which the metric gate "
                    f"`{protection.metric_gate}` needs (condition {_text(leaf)})",
                    reason="METRIC_MISSING",
                    metadata={
                        **where,
                        "metric": metric,
                        "condition": _text(leaf),
                        "gate": protection.metric_gate,
                    },
                )
        if not _holds(gate, candidate.metrics):
            failed = _culprits(gate, candidate.metrics, want=True)
            first = failed[0]
            metric = _metric(first[0])
            values = ", ".join(
                f"{_text(f, negated)} with {_metric(f)} = {_number(candidate.metrics[_metric(f)])}"
                for f, negated in failed
            )
            raise FailedPrecondition(
                f"{prefix} fails the metric gate `{protection.metric_gate}`: {values}",
                reason="METRIC_GATE_FAILED",
                metadata={
                    **where,
                    "gate": protection.metric_gate,
                    "condition": _text(*first),
                    "metric": metric,
                    "candidate_value": _number(candidate.metrics[metric]),
                },
            )
    for rule in protection.no_regression:
        if rule.metric not in candidate.metrics:
            raise FailedPrecondition(
                f"{prefix} has no metric {quoted(rule.metric)}, which must not regress",
                reason="METRIC_MISSING",
                metadata={**where, "metric": rule.metric, "condition": f"no regression on {rule.metric}"},
            )
        if current is None or rule.metric not in current.metrics:
            continue  # nothing to compare with: the first version to carry the metric sets the bar
        new, old = candidate.metrics[rule.metric], current.metrics[rule.metric]
        worse = new < old if rule.direction is Direction.MAXIMIZE else new > old
        if worse:
            better = "higher" if rule.direction is Direction.MAXIMIZE else "lower"
            raise FailedPrecondition(
                f"{prefix} is worse than {current.name}, which the alias points at now: {rule.metric} "
                f"{_number(new)} vs {_number(old)} ({better} is better)",
                reason="METRIC_REGRESSION",
                metadata={
                    **where,
                    "metric": rule.metric,
                    "direction": rule.direction.value,
                    "candidate_value": _number(new),
                    "current_value": _number(old),
                    "current_model_version": str(current.name),
                },
            )
