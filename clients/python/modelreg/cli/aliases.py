"""`modelreg alias set|list|delete|protect|unprotect`."""

from __future__ import annotations

import argparse

from modelreg_api import names
from modelregistry.v1 import model_pb2

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands
from modelreg.cli.output import Output, table, timestamp

_GOALS = {"max": model_pb2.METRIC_DIRECTION_MAXIMIZE, "min": model_pb2.METRIC_DIRECTION_MINIMIZE}
_GOAL_NAMES = {value: key for key, value in _GOALS.items()}


def not_worse(text: str) -> tuple[str, str]:
    """METRIC:max or METRIC:min (the metric's name may itself contain colons)."""
    metric, sep, goal = text.rpartition(":")
    if not sep or not metric or goal.lower() not in _GOALS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not METRIC:max or METRIC:min (max: higher is better, min: lower is better)"
        )
    return metric, goal.lower()


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("alias", help="move, list and protect aliases such as production")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    move = actions.add_parser(
        "set",
        help="point an alias at a version",
        parents=[common],
        description=(
            "Point ALIAS of a model at VERSION, creating the alias if needed. A protected alias "
            "moves only to an approved READY version that passes its gate; a refused move exits 4 "
            "with the rule that failed and the values compared."
        ),
    )
    move.add_argument("model", metavar="NS/MODEL")
    move.add_argument("alias", metavar="ALIAS")
    move.add_argument("version", metavar="VERSION", help="a version number, or NS/MODEL/VERSION")
    move.add_argument(
        "--etag", default="", help="move only if the alias still has this etag (else exit 4, ABORTED)"
    )
    move.set_defaults(handler=set_alias)

    listing = actions.add_parser(
        "list",
        help="list the aliases of a model",
        parents=[common],
        description="List the aliases of a model, the version each points at and its protection.",
    )
    listing.add_argument("model", metavar="NS/MODEL")
    listing.set_defaults(handler=list_aliases)

    delete = actions.add_parser(
        "delete",
        help="remove an alias",
        parents=[common],
        description=(
            "Remove ALIAS from a model (the version stays). A protected alias is refused (exit 4, "
            "ALIAS_PROTECTED): unprotect it first."
        ),
    )
    delete.add_argument("model", metavar="NS/MODEL")
    delete.add_argument("alias", metavar="ALIAS")
    delete.add_argument(
        "--etag", default="", help="delete only if the alias still has this etag (else exit 4, ABORTED)"
    )
    delete.set_defaults(handler=delete_alias)

    protect = actions.add_parser(
        "protect",
        help="allow an alias to move only to approved versions that pass a gate",
        parents=[common],
        description=(
            "Protect ALIAS (it need not exist yet), replacing any earlier rules. From then on it "
            "moves only to READY versions whose review is approved, that satisfy --gate and that "
            "are not worse than the version it points at now on every --not-worse metric. It can "
            "then not be deleted, nor its version archived."
        ),
    )
    protect.add_argument("model", metavar="NS/MODEL")
    protect.add_argument("alias", metavar="ALIAS")
    protect.add_argument(
        "--gate",
        default="",
        metavar="EXPR",
        help="a condition over the candidate's metrics, e.g. 'metrics.auc >= 0.9 AND metrics.p99_ms < 20'",
    )
    protect.add_argument(
        "--not-worse",
        type=not_worse,
        action="append",
        default=[],
        metavar="METRIC:max|min",
        help="not worse than the current version on METRIC (max: higher is better); repeatable",
    )
    protect.set_defaults(handler=protect_alias)

    unprotect = actions.add_parser(
        "unprotect",
        help="remove an alias's protection",
        parents=[common],
        description="Remove the protection of ALIAS: it moves freely again.",
    )
    unprotect.add_argument("model", metavar="NS/MODEL")
    unprotect.add_argument("alias", metavar="ALIAS")
    unprotect.set_defaults(handler=unprotect_alias)


def describe_protection(protection: model_pb2.AliasProtection) -> str:
    rules = ["approved READY versions only"]
    if protection.metric_gate:
        rules.append(f"gate `{protection.metric_gate}`")
    for rule in protection.no_regression:
        better = "higher" if rule.direction == model_pb2.METRIC_DIRECTION_MAXIMIZE else "lower"
        rules.append(f"{rule.metric} not worse than now ({better} is better)")
    return "; ".join(rules)


async def set_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version: int | str = int(args.version) if args.version.isdigit() else args.version
    alias = await client.set_alias(args.model, args.alias, version, etag=args.etag)
    name = names.parse_alias_name(alias.name)
    target = names.parse_model_version_name(alias.model_version)
    out.result(f"{names.short_ref(name)} -> {names.short_ref(target)}", alias)


async def list_aliases(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [alias async for alias in client.list_aliases(args.model)]
    rows = [
        (
            names.parse_alias_name(a.name).alias,
            str(a.version_number),
            timestamp(a.update_time),
            a.update_actor or "-",
            describe_protection(a.protection) if a.protection.name else "-",
        )
        for a in found
    ]
    text = table(("ALIAS", "VERSION", "MOVED", "BY", "PROTECTED"), rows) if rows else "no aliases"
    out.result(text, found)


async def delete_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    await client.delete_alias(args.model, args.alias, etag=args.etag)
    name = names.parse_model_ref(args.model).alias(args.alias)
    out.result(f"deleted {names.short_ref(name)}", {"deleted": str(name)})


async def protect_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    protection = await client.protect_alias(
        args.model, args.alias, metric_gate=args.gate, not_worse=args.not_worse
    )
    name = names.parse_alias_name(protection.name)
    out.result(f"protected {names.short_ref(name)}: {describe_protection(protection)}", protection)


async def unprotect_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    await client.unprotect_alias(args.model, args.alias)
    name = names.parse_model_ref(args.model).alias(args.alias)
    out.result(f"unprotected {names.short_ref(name)}", {"unprotected": str(name)})
