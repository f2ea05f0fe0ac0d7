"""`modelreg versions delete|undelete|purge`, `history` and `namespaces`, against the stack."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.command_line import Cli
from tests.integration.test_cli_governance import as_actor, events_of, push_version
from tests.support import unique

pytestmark = pytest.mark.integration


def resource(ref: str) -> str:
    """`ns/model/3` as a resource name."""
    namespace, model, number = ref.split("/")
    return f"namespaces/{namespace}/models/{model}/versions/{number}"


def test_purge_asks_for_yes_and_a_deleted_version_then_removes_it_for_good(cli: Cli, tmp_path: Path) -> None:
    model = f"team-a/{unique('purge')}"
    version = push_version(cli, model, tmp_path)

    unconfirmed = cli.fails(2, "versions", "purge", version)
    assert "cannot be undone; confirm with --yes" in unconfirmed
    live = cli.fails(4, "versions", "purge", version, "--yes")
    assert "delete it first" in live
    assert live.endswith("[FAILED_PRECONDITION NOT_DELETED]")

    assert cli.ok("versions", "delete", version).stdout.startswith(f"deleted {version} ")
    assert cli.ok("versions", "undelete", version).stdout == f"restored {version}\n"
    assert cli.json("versions", "delete", version)["deleted"] is True
    assert [v["number"] for v in cli.json("versions", "list", model, "--show-deleted")] == ["1"]
    assert cli.json("versions", "list", model) == []

    assert cli.json("versions", "purge", version, "--yes") == {"purged": resource(version)}
    gone = cli.fails(3, "versions", "show", version)
    assert "purged" in gone
    assert gone.endswith("[NOT_FOUND VERSION_PURGED]")
    assert cli.fails(3, "versions", "purge", version, "--yes").endswith("[NOT_FOUND VERSION_PURGED]")
    assert cli.json("versions", "list", model, "--show-deleted") == []
    assert push_version(cli, model, tmp_path) == f"{model}/2"  # the number is not given again

    purges = events_of(cli, model, 1, "--action", "MODEL_VERSION_PURGED")
    assert [(e["resource"], e["actor"]) for e in purges] == [(resource(version), cli.principal)]
    text = cli.ok("events", "--resource", version).stdout.splitlines()
    assert [line.split()[5] for line in text[1:]] == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_FILE_ADDED",
        "MODEL_VERSION_SEALED",
        "MODEL_VERSION_DELETED",
        "MODEL_VERSION_UNDELETED",
        "MODEL_VERSION_DELETED",
        "MODEL_VERSION_PURGED",
    ]
    assert text[-1].endswith("purged false -> true")


def test_history_shows_what_the_aliases_an_alias_and_a_version_were_at_a_time(
    cli: Cli, tmp_path: Path
) -> None:
    model = f"team-a/{unique('history')}"
    first = push_version(cli, model, tmp_path, "--metric", "auc=0.8")
    push_version(cli, model, tmp_path, "--metric", "auc=0.9")
    cli.ok("alias", "set", model, "production", "1")
    then = events_of(cli, model, 1, "--action", "ALIAS_CREATED")[0]["time"]
    time.sleep(0.01)  # later moves in later milliseconds
    cli.ok("alias", "set", model, "production", "2")
    cli.ok("alias", "set", model, "staging", "1")
    now = datetime.now(UTC).isoformat()

    def pointers(states: list[dict[str, dict[str, str]]]) -> list[tuple[str, str]]:
        return [(s["alias"]["name"].rsplit("/", 1)[1], s["alias"]["version_number"]) for s in states]

    assert pointers(cli.json("history", model, "--at", then)) == [("production", "1")]
    assert pointers(cli.json("history", model, "--at", now)) == [("production", "2"), ("staging", "1")]
    lines = cli.ok("history", model, "--at", now).stdout.splitlines()
    assert lines[0].startswith(f"{model} at ")
    assert lines[1].split() == ["ALIAS", "VERSION", "MOVED", "BY", "EVENT"]
    assert [line.split()[:2] for line in lines[2:]] == [["production", "2"], ["staging", "1"]]

    alias = cli.json("history", f"{model}@production", "--at", then)
    assert (alias["alias"]["version_number"], alias["as_of"]["action"]) == ("1", "ALIAS_CREATED")
    assert cli.ok("history", f"{model}@production", "--at", then).stdout.startswith(
        f"{model}@production -> 1 at "
    )
    version = cli.json("history", first, "--at", then)
    assert version["model_version"]["metrics"] == {"auc": 0.8}
    assert version["model_version"]["state"] == "MODEL_VERSION_STATE_READY"
    shown = cli.ok("history", first, "--at", then).stdout
    assert "metrics:     auc=0.8" in shown
    assert "as of event" in shown

    before = cli.fails(3, "history", f"{model}@staging", "--at", then)
    assert before.endswith("[NOT_FOUND NOT_FOUND_AT_TIME]")
    assert cli.ok("history", model, "--at", "2000-01-01T00:00:00Z").stdout.endswith("no aliases\n")
    assert "is not an RFC 3339 time" in cli.fails(2, "history", model, "--at", "yesterday")
    assert "required" in cli.fails(2, "history", model)


def test_allowing_self_approval_in_a_namespace_lets_the_creator_approve(cli: Cli, tmp_path: Path) -> None:
    namespace = unique("team")  # its own: other tests rely on four eyes in theirs
    model = f"{namespace}/m"
    version = push_version(cli, model, tmp_path)
    cli.ok("review", "submit", version)
    assert cli.fails(7, "review", "approve", version).endswith(
        "[PERMISSION_DENIED SELF_APPROVAL_NOT_ALLOWED]"
    )
    assert "allow self-approval: no (four eyes)" in cli.ok("namespaces", "show", namespace).stdout

    updated = cli.json("namespaces", "update", namespace, "--allow-self-approval", "true")
    assert updated["allow_self_approval"] is True
    approved = cli.json("review", "approve", version)
    assert approved["review_state"] == "MODEL_VERSION_REVIEW_STATE_APPROVED"
    listed = cli.json("namespaces", "list")
    assert [
        n.get("allow_self_approval", False) for n in listed if n["name"] == f"namespaces/{namespace}"
    ] == [True]

    shown = cli.ok("namespaces", "update", namespace, "--allow-self-approval", "false").stdout
    assert "allow self-approval: no (four eyes)" in shown
    second = push_version(cli, model, tmp_path)
    cli.ok("review", "submit", second)
    cli.fails(7, "review", "approve", second)
    as_actor(cli, unique("reviewer")).ok("review", "approve", second)

    updates = cli.json("events", "--namespace", namespace, "--action", "NAMESPACE_UPDATED")
    assert [(e["after"], e["actor"]) for e in updates] == [
        ({"allow_self_approval": True}, cli.principal),
        ({"allow_self_approval": False}, cli.principal),
    ]
    assert "nothing to update" in cli.fails(2, "namespaces", "update", namespace)
    assert "is not true or false" in cli.fails(
        2, "namespaces", "update", namespace, "--allow-self-approval", "maybe"
    )
    cli.fails(3, "namespaces", "update", unique("nowhere"), "--allow-self-approval", "true")
