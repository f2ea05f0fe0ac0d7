"""`modelreg events`: the audit trail, and following it as it grows."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from modelreg_api import names
from modelregistry.v1 import event_pb2

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError
from modelreg.cli.output import Output, table, timestamp
from modelreg.errors import RegistryError

# Fields of `before`/`after` that say nothing to a person reading the trail.
_QUIET_FIELDS = {"uid", "model_uid", "create_time", "update_time", "create_actor", "update_actor", "etag"}
_VALUE_WIDTH = 40
_SUMMARY_WIDTH = 160


def moment(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time (2026-11-26T12:00:00Z)") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; end it with Z or +HH:MM")
    return parsed


def sequence(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a sequence number (0, 1, 2...)")
    return int(text)


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    events = commands.add_parser(
        "events",
        help="print the audit trail; --follow prints new events as they happen",
        parents=[common],
        description=(
            "Print the audit trail in sequence order (with --newest-first, the latest first): every "
            "change to namespaces, models, versions, aliases and reviews, with its actor and what "
            "changed. With --follow, keep printing new "
            "events as they are committed (reconnecting, without gaps or repeats, when the service "
            "restarts) until interrupted. With --output json: a JSON array, or with --follow one "
            "JSON object per line. To resume later, pass the last SEQ printed to --since."
        ),
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument(
        "--since", type=sequence, default=0, metavar="SEQ", help="only events after sequence number SEQ"
    )
    events.add_argument("--namespace", default="", metavar="NS", help="only this namespace's resources")
    events.add_argument(
        "--model", default="", metavar="NS/MODEL", help="only this model, its versions and aliases"
    )
    events.add_argument(
        "--resource",
        default="",
        metavar="REF",
        help="only exactly this resource: NS/MODEL, NS/MODEL/VERSION, NS/MODEL@ALIAS or a resource name",
    )
    events.add_argument(
        "--action",
        action="append",
        default=[],
        metavar="ACTION",
        help="only this action, e.g. ALIAS_MOVED (see docs/governance.md); repeatable",
    )
    events.add_argument(
        "--by",
        default="",
        metavar="PRINCIPAL",
        help="only changes made by PRINCIPAL (e.g. user:alice@example.com)",
    )
    events.add_argument(
        "--newest-first",
        action="store_true",
        help="latest event first (what changed recently); --since still means only later events",
    )
    events.add_argument("--start-time", type=moment, metavar="TIME", help="only events at or after TIME")
    events.add_argument(
        "--end-time", type=moment, metavar="TIME", help="only events before TIME (not with --follow)"
    )
    events.set_defaults(handler=print_events)


def _short(resource: str) -> str:
    """`fraud/detector@production` for an alias's resource name; other names as short as they go."""
    for parse in (names.parse_alias_name, names.parse_model_version_name, names.parse_model_name):
        try:
            return names.short_ref(parse(resource))
        except names.InvalidResourceName:
            continue
    return resource.removeprefix("namespaces/")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps (metrics, tags, labels, params) as dotted keys; lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if not prefix and key in _QUIET_FIELDS:
            continue
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _files(before: list[Any], after: list[Any]) -> str:
    old = {f.get("path"): f.get("sha256") for f in before if isinstance(f, dict)}
    new = {f.get("path"): f.get("sha256") for f in after if isinstance(f, dict)}
    added = [f"+{path}" for path in new if path not in old or old[path] != new[path]]
    removed = [f"-{path}" for path in old if path not in new]
    return "files " + " ".join(added + removed)


def _reviews(after: list[Any]) -> str:
    steps = []
    for step in after:
        if isinstance(step, dict):
            comment = f' "{step["comment"]}"' if step.get("comment") else ""
            steps.append(f"{str(step.get('decision', '')).lower()}{comment}")
    return "review " + ", ".join(steps)


def summary(event: event_pb2.Event) -> str:
    """What changed, in one line: `state PENDING -> READY`, `version_number 1 -> 2`, `files +a.bin`."""
    before = json_format.MessageToDict(event.before, preserving_proto_field_name=True)
    after = json_format.MessageToDict(event.after, preserving_proto_field_name=True)
    if not before and event.action.endswith("_CREATED"):
        # A creation carries the whole initial state; the point of an alias is where it points.
        return f"-> {_value(after['version_number'])}" if "version_number" in after else ""
    parts = []
    if "files" in before or "files" in after:
        parts.append(_files(before.pop("files", []), after.pop("files", [])))
        before.pop("manifest_digest", None)
        after.pop("manifest_digest", None)
    if "reviews" in after:
        before.pop("reviews", None)
        parts.append(_reviews(after.pop("reviews")))
    old, new = _flatten(before), _flatten(after)
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            parts.append(f"{key} {_value(old.get(key))} -> {_value(new.get(key))}")
    text = "; ".join(parts)
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 1] + "…"


def _row(event: event_pb2.Event) -> tuple[str, ...]:
    return (
        str(event.sequence),
        timestamp(event.time),
        event.actor or "-",
        event.action,
        _short(event.resource),
        summary(event),
    )


_HEADERS = ("SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "CHANGE")


async def print_events(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    scope = {
        "namespace": args.namespace,
        "model": args.model,
        "resource": args.resource,
        "actions": args.action,
    }
    if not args.follow:
        found = [
            event
            async for event in client.list_events(
                **scope,
                actor=args.by,
                start_time=args.start_time,
                end_time=args.end_time,
                after_sequence=args.since,
                newest_first=args.newest_first,
            )
        ]
        out.result(table(_HEADERS, [_row(e) for e in found]) if found else "no events", found)
        return
    if args.end_time is not None:
        raise UsageError("--end-time", "cannot be combined with --follow")
    if args.newest_first:
        raise UsageError(
            "--newest-first", "cannot be combined with --follow (which prints events as they come)"
        )

    def reconnecting(error: RegistryError, after: int, delay: float) -> None:
        if not args.quiet:
            out.log(f"event stream interrupted ({error.message}); resuming after {after} in {delay:.1f}s")

    # WatchEvents filters by scope; actor and start time are checked here.
    async for event in client.watch_events(after_sequence=args.since, on_reconnect=reconnecting, **scope):
        if args.by and event.actor != args.by:
            continue
        if (
            args.start_time is not None
            and event.time.ToDatetime(tzinfo=args.start_time.tzinfo) < args.start_time
        ):
            continue
        if out.json_mode:
            out.record(event)
        else:
            seq, time, actor, action, resource, change = _row(event)
            out.line(f"{seq:>6}  {time}  {actor:<16}  {action:<30}  {resource}  {change}".rstrip())
