"""`modelreg versions list|show`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from google.protobuf import json_format
from modelregistry.v1 import model_pb2

from modelreg import names
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands
from modelreg.cli.output import Output, human_bytes, table, timestamp


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("versions", help="list and show model versions")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="list the versions of a model", parents=[common], description="List model versions."
    )
    listing.add_argument("model", metavar="NS/MODEL")
    listing.set_defaults(handler=list_versions)

    show = actions.add_parser(
        "show",
        help="show one version, by number or alias",
        parents=[common],
        description="Show a model version: metadata, lineage and file manifest.",
    )
    show.add_argument("version", metavar="NS/MODEL/VERSION|NS/MODEL@ALIAS")
    show.set_defaults(handler=show_version)


def state_name(state: int) -> str:
    return model_pb2.ModelVersionState.Name(state).removeprefix("MODEL_VERSION_STATE_")  # type: ignore[arg-type]


def _metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in sorted(metrics.items()))


def describe(version: model_pb2.ModelVersion) -> str:
    name = names.parse_model_version_name(version.name)
    lines = [
        f"version:     {names.short_ref(name)}",
        f"name:        {version.name}",
        f"uid:         {version.uid}",
        f"state:       {state_name(version.state)}",
        f"aliases:     {', '.join(version.aliases) or '-'}",
        f"created:     {timestamp(version.create_time)} by {version.create_actor or '-'}",
    ]
    if version.description:
        lines.append(f"description: {version.description}")
    if version.params.fields:
        params = json_format.MessageToDict(version.params)
        lines.append(f"params:      {json.dumps(params, sort_keys=True, ensure_ascii=False)}")
    if version.metrics:
        lines.append(f"metrics:     {_metrics(version.metrics)}")
    if version.tags:
        lines.append("tags:        " + ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items())))
    lineage = json_format.MessageToDict(version.lineage, preserving_proto_field_name=True)
    for key, value in lineage.items():
        lines.append(f"lineage:     {key} = {json.dumps(value, ensure_ascii=False)}")
    if version.signature.inputs or version.signature.outputs:
        signature = json_format.MessageToDict(version.signature, preserving_proto_field_name=True)
        lines.append(f"signature:   {json.dumps(signature, ensure_ascii=False)}")
    total = sum(f.size_bytes for f in version.files)
    lines.append(
        f"files:       {len(version.files)} ({human_bytes(total)}), manifest sha256 {version.manifest_digest}"
    )
    if version.files:
        rows = [(f.path, human_bytes(f.size_bytes), f.sha256) for f in version.files]
        lines += ["", table(("PATH", "SIZE", "SHA256"), rows)]
    return "\n".join(lines)


async def list_versions(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [version async for version in client.list_versions(args.model)]
    rows = [
        (
            str(v.number),
            state_name(v.state),
            ",".join(v.aliases) or "-",
            timestamp(v.create_time),
            v.create_actor or "-",
            _metrics(v.metrics),
        )
        for v in found
    ]
    text = table(("VERSION", "STATE", "ALIASES", "CREATED", "BY", "METRICS"), rows) if rows else "no versions"
    out.result(text, found)


async def show_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version = await client.get_version(args.version)
    out.result(describe(version), version)
