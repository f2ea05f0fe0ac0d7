"""`modelreg` search, compare, protected aliases, reviews and the audit trail, against the stack."""

from __future__ import annotations

import json
import queue
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.command_line import Cli, Lines
from tests.support import unique

pytestmark = pytest.mark.integration


def push_version(cli: Cli, model: str, tmp_path: Path, *args: str) -> str:
    """Push a tiny file of unique content as a new version; returns NS/MODEL/NUMBER."""
    source = tmp_path / unique("file")
    source.write_text(source.name)
    return cli.ok("push", model, str(source), "-q", *args).stdout.strip()


def as_actor(cli: Cli, actor: str) -> Cli:
    """The same command line acting as `user:<actor>` (a global admin)."""
    return cli.as_principal(actor)


def test_versions_list_filters_and_orders(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('search')}"
    for auc, team in ((0.80, "a"), (0.95, "b"), (0.90, "a"), (0.70, "b")):
        push_version(cli, model, tmp_path, "--metric", f"auc={auc}", "--tag", f"team={team}")

    found = cli.json(
        "versions", "list", model, "--filter", "metrics.auc > 0.75", "--order-by", "metrics.auc desc"
    )
    assert [(v["number"], v["metrics"]["auc"]) for v in found] == [("2", 0.95), ("3", 0.9), ("1", 0.8)]
    either = cli.json("versions", "list", model, "--filter", 'tags.team = "b" OR metrics.auc >= 0.9')
    assert [v["number"] for v in either] == ["2", "3", "4"]  # default order: oldest first

    text = cli.ok(
        "versions", "list", model, "--filter", 'tags.team = "a"', "--order-by", "number desc"
    ).stdout
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "STATE", "REVIEW"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "1"]
    assert "auc=0.9" in lines[1]
    assert cli.ok("versions", "list", model, "--filter", "metrics.auc > 2").stdout == "no versions match\n"

    bad = cli.fails(2, "versions", "list", model, "--filter", "metrics.auc >")
    assert "INVALID_ARGUMENT INVALID_FILTER" in bad
    assert "position" in bad
    assert "INVALID_ARGUMENT" in cli.fails(2, "versions", "list", model, "--order-by", "metrics.auc sideways")


def test_compare_shows_metrics_and_params_side_by_side_with_differences_marked(
    cli: Cli, tmp_path: Path
) -> None:
    model = f"team-a/{unique('cmp')}"
    push_version(cli, model, tmp_path, "--metric", "auc=0.9", "--metric", "f1=0.8", "--param", "lr=0.1",
                 "--param", "optimizer=adam", "--param", "depth=8")  # fmt: skip
    push_version(cli, model, tmp_path, "--metric", "auc=0.95", "--metric", "f1=0.8", "--param", "lr=0.2",
                 "--param", "optimizer=adam", "--alias", "candidate")  # fmt: skip

    table = cli.ok("compare", model, "1", "candidate").stdout
    rows = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in table.splitlines()
        if line
    }
    assert rows["METRIC"].split() == ["METRIC", "1", "2"]
    assert rows["auc"].split() == ["*", "auc", "0.9", "0.95"]
    assert rows["f1"].split() == ["f1", "0.8", "0.8"]  # the same in both: not marked
    assert rows["lr"].split() == ["*", "lr", "0.1", "0.2"]
    assert rows["optimizer"].split() == ["optimizer", "adam", "adam"]
    assert rows["depth"].split() == ["*", "depth", "8", "-"]  # missing in version 2: a difference
    assert table.rstrip().endswith("* differs between the versions (3 of 5 rows)")

    only = cli.ok("compare", model, "1", "2", "--differences").stdout
    assert "auc" in only
    assert "optimizer" not in only
    assert " f1 " not in only

    data = cli.json("compare", model, "1", "2")
    assert data["versions"] == [f"namespaces/{model.replace('/', '/models/')}/versions/{n}" for n in (1, 2)]
    assert data["metrics"] == [
        {"key": "auc", "values": [0.9, 0.95], "differs": True},
        {"key": "f1", "values": [0.8, 0.8], "differs": False},
    ]
    assert {row["key"]: row["values"] for row in data["params"]}["depth"] == [8, None]

    assert "at least two versions" in cli.fails(2, "compare", model, "1")
    assert "not found" in cli.fails(3, "compare", model, "1", "7")


def test_a_protected_alias_refuses_moves_and_says_why(cli: Cli, tmp_path: Path) -> None:
    reviewer = as_actor(cli, unique("reviewer"))
    model = f"team-a/{unique('gate')}"
    cli.ok("models", "create", model)

    def approved(auc: float) -> str:
        version = push_version(cli, model, tmp_path, "--metric", f"auc={auc}", "--metric", "latency_ms=12")
        cli.ok("review", "submit", version)
        reviewer.ok("review", "approve", version)
        return version.rsplit("/", 1)[1]

    protection = cli.json(
        "alias", "protect", model, "production", "--gate", "metrics.auc >= 0.9", "--not-worse", "auc:max",
        "--not-worse", "latency_ms:min",
    )  # fmt: skip
    assert protection["metric_gate"] == "metrics.auc >= 0.9"
    assert protection["no_regression"] == [
        {"metric": "auc", "direction": "METRIC_DIRECTION_MAXIMIZE"},
        {"metric": "latency_ms", "direction": "METRIC_DIRECTION_MINIMIZE"},
    ]

    unreviewed = push_version(cli, model, tmp_path, "--metric", "auc=0.99").rsplit("/", 1)[1]
    refused = cli.fails(4, "alias", "set", model, "production", unreviewed)
    assert "not approved" in refused
    assert "[FAILED_PRECONDITION PROTECTED_ALIAS_VERSION_NOT_APPROVED]" in refused

    weak = approved(0.85)
    refused = cli.fails(4, "alias", "set", model, "production", weak)
    assert "fails the metric gate `metrics.auc >= 0.9`" in refused
    assert "auc = 0.85" in refused
    assert refused.endswith("[FAILED_PRECONDITION METRIC_GATE_FAILED]")

    good = approved(0.93)
    assert (
        cli.ok("alias", "set", model, "production", good).stdout == f"{model}@production -> {model}/{good}\n"
    )

    worse = approved(0.91)
    regression = cli.run("alias", "set", model, "production", worse, "--output", "json")
    assert regression.returncode == 4
    error = json.loads(regression.stderr.splitlines()[0])["error"]
    assert (error["code"], error["reason"]) == ("FAILED_PRECONDITION", "METRIC_REGRESSION")
    assert "auc 0.91 vs 0.93 (higher is better)" in error["message"]
    assert cli.json("versions", "show", f"{model}@production")["number"] == good  # did not move

    # Protected: it cannot be deleted until unprotected.
    assert "ALIAS_PROTECTED" in cli.fails(4, "alias", "delete", model, "production")
    listed = cli.ok("alias", "list", model).stdout
    assert "gate `metrics.auc >= 0.9`" in listed
    assert cli.ok("alias", "unprotect", model, "production").stdout == f"unprotected {model}@production\n"
    assert cli.ok("alias", "set", model, "production", worse).returncode == 0  # moves freely again
    assert cli.ok("alias", "delete", model, "production").stdout == f"deleted {model}@production\n"
    assert "not found" in cli.fails(3, "versions", "show", f"{model}@production")

    assert "is not METRIC:max or METRIC:min" in cli.fails(
        2, "alias", "protect", model, "production", "--not-worse", "auc:up"
    )


def test_four_eyes_the_creator_cannot_approve_another_actor_can(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('review')}"
    version = push_version(cli, model, tmp_path)
    creator = cli.principal
    reviewer = as_actor(cli, unique("reviewer"))

    assert cli.ok("review", "submit", version, "--comment", "ready?").stdout == f"{version}: review PENDING\n"
    denied = cli.fails(7, "review", "approve", version, "--comment", "mine")
    assert f"{creator} created model version" in denied
    assert denied.endswith("[PERMISSION_DENIED SELF_APPROVAL_NOT_ALLOWED]")

    rejected = reviewer.json("review", "reject", version, "--comment", "needs eval")
    assert rejected["review_state"] == "MODEL_VERSION_REVIEW_STATE_REJECTED"
    assert "REVIEW_NOT_PENDING" in reviewer.fails(4, "review", "approve", version)
    cli.ok("review", "submit", version, "--comment", "evaluated")
    # --token-file overrides MODELREG_TOKEN.
    token_file = tmp_path / "reviewer.token"
    token_file.write_text(reviewer.env["MODELREG_TOKEN"] + "\n")
    approved = cli.json("review", "approve", version, "--token-file", str(token_file), "--comment", "ok")
    assert approved["review_state"] == "MODEL_VERSION_REVIEW_STATE_APPROVED"
    assert [(r["decision"], r["actor"], r.get("comment")) for r in approved["reviews"]] == [
        ("REVIEW_DECISION_SUBMITTED", creator, "ready?"),
        ("REVIEW_DECISION_REJECTED", reviewer.principal, "needs eval"),
        ("REVIEW_DECISION_SUBMITTED", creator, "evaluated"),
        ("REVIEW_DECISION_APPROVED", reviewer.principal, "ok"),
    ]
    shown = cli.ok("versions", "show", version).stdout
    assert "review:      APPROVED" in shown
    assert "reviewed:    APPROVED" in shown

    assert "is an alias; a version number is needed here" in cli.fails(
        2, "review", "approve", f"{model}@production"
    )


def events_of(cli: Cli, model: str, count: int, *args: str) -> list[dict[str, Any]]:
    """The model's events once there are `count` (the relay places them just after each call)."""
    deadline = time.monotonic() + 15
    while True:
        found: list[dict[str, Any]] = cli.json("events", "--model", model, *args)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_events_list_every_mutation_with_its_actor(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('trail')}"
    actor = cli.principal
    reviewer = as_actor(cli, unique("reviewer"))
    cli.ok("models", "create", model, "--description", "audited")
    first = push_version(cli, model, tmp_path, "--metric", "auc=0.9", "--alias", "staging")
    second = push_version(cli, model, tmp_path, "--metric", "auc=0.95")
    cli.ok("alias", "set", model, "staging", "2")
    cli.ok("review", "submit", second)
    reviewer.ok("review", "approve", second)
    cli.ok("alias", "protect", model, "production", "--gate", "metrics.auc > 0.9")
    cli.ok("alias", "set", model, "production", "2")
    cli.ok("alias", "unprotect", model, "production")
    cli.ok("alias", "delete", model, "staging")

    expected = [
        ("MODEL_CREATED", model, actor),
        ("MODEL_VERSION_CREATED", first, actor),
        ("MODEL_VERSION_FILE_ADDED", first, actor),  # through the artifact service, same actor
        ("MODEL_VERSION_SEALED", first, actor),
        ("ALIAS_CREATED", f"{model}@staging", actor),
        ("MODEL_VERSION_CREATED", second, actor),
        ("MODEL_VERSION_FILE_ADDED", second, actor),
        ("MODEL_VERSION_SEALED", second, actor),
        ("ALIAS_MOVED", f"{model}@staging", actor),
        ("MODEL_VERSION_REVIEW_SUBMITTED", second, actor),
        ("MODEL_VERSION_APPROVED", second, reviewer.principal),
        ("ALIAS_PROTECTED", f"{model}@production", actor),
        ("ALIAS_CREATED", f"{model}@production", actor),
        ("ALIAS_UNPROTECTED", f"{model}@production", actor),
        ("ALIAS_DELETED", f"{model}@staging", actor),
    ]
    found = events_of(cli, model, len(expected))
    short = {f"namespaces/{model.replace('/', '/models/')}": model}
    for n in (1, 2):
        short[f"namespaces/{model.replace('/', '/models/')}/versions/{n}"] = f"{model}/{n}"
    for alias in ("staging", "production"):
        short[f"namespaces/{model.replace('/', '/models/')}/aliases/{alias}"] = f"{model}@{alias}"
    assert [(e["action"], short[e["resource"]], e["actor"]) for e in found] == expected
    sequences = [int(e["sequence"]) for e in found]
    assert sequences == sorted(sequences)
    moved = found[8]
    assert (moved["before"], moved["after"]) == ({"version_number": 1.0}, {"version_number": 2.0})

    # The text form: one row per event, what changed in a few words.
    lines = cli.ok("events", "--model", model).stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "CHANGE"]
    assert len(lines) == 1 + len(expected)
    assert lines[9].split()[-6:] == ["ALIAS_MOVED", f"{model}@staging", "version_number", "1", "->", "2"]
    assert lines[4].endswith("state PENDING -> READY")

    # Filters: actions, actor, resource, and after a sequence number.
    moves = cli.json("events", "--model", model, "--action", "alias_moved", "--action", "ALIAS_CREATED")
    assert [e["action"] for e in moves] == ["ALIAS_CREATED", "ALIAS_MOVED", "ALIAS_CREATED"]
    by_reviewer = cli.json("events", "--model", model, "--by", reviewer.principal)
    assert [e["action"] for e in by_reviewer] == ["MODEL_VERSION_APPROVED"]
    of_staging = cli.json("events", "--resource", f"{model}@staging")
    assert [e["action"] for e in of_staging] == ["ALIAS_CREATED", "ALIAS_MOVED", "ALIAS_DELETED"]
    later = cli.json("events", "--model", model, "--since", str(sequences[-3]))
    assert [int(e["sequence"]) for e in later] == sequences[-2:]
    newest = cli.json("events", "--model", model, "--newest-first")
    assert [int(e["sequence"]) for e in newest] == sequences[::-1]
    assert [
        int(e["sequence"])
        for e in cli.json("events", "--model", model, "--newest-first", "--since", str(sequences[-3]))
    ] == sequences[-1:-3:-1]


def test_events_follow_prints_mutations_made_after_it_started(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('follow')}"
    cli.ok("models", "create", model)
    with cli.popen("events", "--follow", "--model", model, "--output", "json") as follower:
        lines = Lines(follower.stdout)
        try:
            # The model's creation is in the trail already: printed first.
            created = json.loads(lines.next(timeout=30) or "")
            assert (created["action"], created["resource"]) == (
                "MODEL_CREATED",
                f"namespaces/{model.replace('/', '/models/')}",
            )
            version = push_version(cli, model, tmp_path, "--alias", "live")  # after it started
            seen: list[dict[str, Any]] = []
            while len(seen) < 4:
                line = lines.next(timeout=30)
                assert line is not None, "the follower stopped"
                seen.append(json.loads(line))
        except queue.Empty:
            pytest.fail("modelreg events --follow printed nothing within 30 s")
        finally:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
    assert [(e["action"], e["resource"].rsplit("/", 1)[1]) for e in seen] == [
        ("MODEL_VERSION_CREATED", version.rsplit("/", 1)[1]),
        ("MODEL_VERSION_FILE_ADDED", version.rsplit("/", 1)[1]),
        ("MODEL_VERSION_SEALED", version.rsplit("/", 1)[1]),
        ("ALIAS_CREATED", "live"),
    ]
    sequences = [int(created["sequence"])] + [int(e["sequence"]) for e in seen]
    assert sequences == sorted(set(sequences))
    assert follower.returncode == 130  # stopped like Ctrl-C, not crashed

    # The text form follows too, from a sequence number on.
    with cli.popen("events", "-f", "--model", model, "--since", str(sequences[-2])) as follower:
        lines = Lines(follower.stdout)
        try:
            row = lines.next(timeout=30) or ""
        finally:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
    assert row.split()[0] == str(sequences[-1])
    assert "ALIAS_CREATED" in row
    assert row.endswith(f"{model}@live  -> 1")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["events", "--since", "x"], 2, "'x' is not a sequence number"),
        (["events", "--start-time", "yesterday"], 2, "is not an RFC 3339 time"),
        (["events", "-f", "--end-time", "2026-01-01T00:00:00Z"], 2, "cannot be combined with --follow"),
        (["events", "--model", "team-a"], 2, "is not of the form NAMESPACE/MODEL"),
        (["compare", "team-a/x", "1", "Prod"], 2, "alias id 'Prod' is invalid"),
        (["alias", "delete", "team-a/no-such-model", "prod"], 3, "not found"),
        (["alias", "protect", "team-a/m", "prod", "--gate", "metrics.auc >>"], 2, "INVALID_ARGUMENT"),
        (["review", "submit", "team-a/no-such-model/1"], 3, "not found"),
    ],
)
def test_governance_errors_exit_non_zero_with_one_line(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    assert message in cli.fails(code, *args)
