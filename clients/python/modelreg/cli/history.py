"""`modelreg history REF --at TIME`: a model's aliases, an alias or a version as they were."""

from __future__ import annotations

import argparse

from modelreg_api import names
from modelregistry.v1 import event_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands
from modelreg.cli.events import moment
from modelreg.cli.output import Output, table, timestamp
from modelreg.cli.versions import describe


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    history = commands.add_parser(
        "history",
        help="what a model's aliases, an alias or a version looked like at a past time",
        parents=[common],
        description=(
            "Answer from the audit trail what REF looked like at TIME: for NS/MODEL, every alias "
            'it had then and the version each pointed at ("what was production on date X?"); '
            "for NS/MODEL@ALIAS, that alias; for NS/MODEL/VERSION, the version's metadata, "
            "metrics, state and review then. Exits 3 when REF did not exist at TIME (an alias "
            "deleted or a version purged by then included)."
        ),
    )
    history.add_argument("ref", metavar="NS/MODEL|NS/MODEL@ALIAS|NS/MODEL/VERSION")
    history.add_argument(
        "--at", type=moment, required=True, metavar="TIME", help="RFC 3339, e.g. 2026-11-20T10:00:00Z"
    )
    history.set_defaults(handler=show_history)


def _as_of(event: event_pb2.Event) -> str:
    return f"as of event {event.sequence} ({event.action}, {timestamp(event.time)} by {event.actor or '-'})"


def _alias_line(state: md.StateAtTime) -> tuple[str, str, str, str, str]:
    alias = state.alias
    return (
        names.parse_alias_name(alias.name).alias,
        str(alias.version_number),
        timestamp(alias.update_time),
        alias.update_actor or "-",
        str(state.as_of.sequence),
    )


async def show_history(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    at = args.at.isoformat().replace("+00:00", "Z")
    try:
        model = names.parse_model_ref(args.ref, "REF")
    except names.InvalidResourceName:
        model = None
    if model is not None:
        states = await client.aliases_at(str(model), args.at)
        rows = [_alias_line(state) for state in states]
        title = f"{names.short_ref(model)} at {at}:"
        body = table(("ALIAS", "VERSION", "MOVED", "BY", "EVENT"), rows) if rows else "no aliases"
        out.result(f"{title}\n{body}", states)
        return
    state = await client.state_at(args.ref, args.at)
    if state.WhichOneof("state") == "alias":
        alias = state.alias
        ref = names.short_ref(names.parse_alias_name(alias.name))
        text = (
            f"{ref} -> {alias.version_number} at {at} "
            f"(moved {timestamp(alias.update_time)} by {alias.update_actor or '-'}); {_as_of(state.as_of)}"
        )
        out.result(text, state)
        return
    out.result(f"{describe(state.model_version)}\n{_as_of(state.as_of)}", state)
