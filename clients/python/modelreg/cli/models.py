"""`modelreg models create|list|show`."""

from __future__ import annotations

import argparse

from modelreg_api import names
from modelregistry.v1 import model_pb2

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, key_value, text_file
from modelreg.cli.output import Output, table, timestamp


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("models", help="register, list and show models")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", help="register a model", parents=[common], description="Register a new model."
    )
    create.add_argument("model", metavar="NS/MODEL")
    create.add_argument("--description", default="")
    create.add_argument("--display-name", default="")
    create.add_argument("--owner", default="", help="a person or a team handle")
    create.add_argument(
        "--label", type=key_value, action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    create.add_argument("--model-card", type=text_file, metavar="FILE", help="a Markdown file")
    create.set_defaults(handler=create_model)

    listing = actions.add_parser(
        "list", help="list the models of a namespace", parents=[common], description="List models."
    )
    listing.add_argument("namespace", metavar="NS")
    listing.set_defaults(handler=list_models)

    show = actions.add_parser("show", help="show one model", parents=[common], description="Show a model.")
    show.add_argument("model", metavar="NS/MODEL")
    show.set_defaults(handler=show_model)


def describe(model: model_pb2.Model) -> str:
    name = names.parse_model_name(model.name)
    lines = [
        f"model:        {names.short_ref(name)}",
        f"name:         {model.name}",
        f"uid:          {model.uid}",
        f"display name: {model.display_name}",
        f"owner:        {model.owner}",
        f"versions:     {model.latest_version_number}",
        f"created:      {timestamp(model.create_time)} by {model.create_actor or '-'}",
    ]
    if model.labels:
        lines.append("labels:       " + ", ".join(f"{k}={v}" for k, v in sorted(model.labels.items())))
    if model.description:
        lines.append(f"description:  {model.description}")
    if model.model_card:
        lines += ["", model.model_card]
    return "\n".join(lines)


async def create_model(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    model = await client.create_model(
        args.model,
        description=args.description,
        display_name=args.display_name,
        owner=args.owner,
        labels=dict(args.label),
        model_card=args.model_card or "",
    )
    out.result(describe(model), model)


async def list_models(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [model async for model in client.list_models(args.namespace)]
    rows = [
        (
            names.short_ref(names.parse_model_name(m.name)),
            str(m.latest_version_number),
            m.owner or "-",
            timestamp(m.update_time),
            m.description.splitlines()[0] if m.description else "",
        )
        for m in found
    ]
    text = table(("MODEL", "VERSIONS", "OWNER", "UPDATED", "DESCRIPTION"), rows) if rows else "no models"
    out.result(text, found)


async def show_model(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    model = await client.get_model(args.model)
    out.result(describe(model), model)
