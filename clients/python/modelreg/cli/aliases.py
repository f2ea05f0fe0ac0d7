"""`modelreg alias set`."""

from __future__ import annotations

import argparse

from modelreg import names
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands
from modelreg.cli.output import Output


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("alias", help="move aliases such as production")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    move = actions.add_parser(
        "set",
        help="point an alias at a version",
        parents=[common],
        description="Point ALIAS of a model at VERSION, creating the alias if needed.",
    )
    move.add_argument("model", metavar="NS/MODEL")
    move.add_argument("alias", metavar="ALIAS")
    move.add_argument("version", metavar="VERSION", help="a version number, or NS/MODEL/VERSION")
    move.add_argument(
        "--etag", default="", help="move only if the alias still has this etag (else exit 4, ABORTED)"
    )
    move.set_defaults(handler=set_alias)


async def set_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version: int | str = int(args.version) if args.version.isdigit() else args.version
    alias = await client.set_alias(args.model, args.alias, version, etag=args.etag)
    name = names.parse_alias_name(alias.name)
    target = names.parse_model_version_name(alias.model_version)
    out.result(f"{names.short_ref(name)} -> {names.short_ref(target)}", alias)
