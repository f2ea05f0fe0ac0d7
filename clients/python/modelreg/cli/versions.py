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
        "list",
        help="list or search the versions of a model",
        parents=[common],
        description=(
            "List the versions of a model, oldest first, or those matching --filter in --order-by "
            "order. The filter language (docs/filter-language.md) compares metrics, params, tags, "
            "lineage and state: "
            "'metrics.auc > 0.9 AND (tags.team = \"a\" OR params.optimizer.lr <= 1e-3)'."
        ),
    )
    listing.add_argument("model", metavar="NS/MODEL")
    listing.add_argument("--filter", default="", metavar="EXPR", help="only versions matching EXPR")
    listing.add_argument(
        "--order-by",
        default="",
        metavar="KEYS",
        help="comma-separated keys with optional desc, e.g. 'metrics.auc desc, number'",
    )
    listing.add_argument("--show-deleted", action="store_true", help="include soft-deleted versions")
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


def review_name(state: int) -> str:
    name = model_pb2.ModelVersionReviewState.Name(state)  # type: ignore[arg-type]
    return name.removeprefix("MODEL_VERSION_REVIEW_STATE_").replace("UNSPECIFIED", "NOT_SUBMITTED")


def _metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in sorted(metrics.items()))


def describe(version: model_pb2.ModelVersion) -> str:
    name = names.parse_model_version_name(version.name)
    lines = [
        f"version:     {names.short_ref(name)}",
        f"name:        {version.name}",
        f"uid:         {version.uid}",
        f"state:       {state_name(version.state)}{' (deleted)' if version.deleted else ''}",
        f"review:      {review_name(version.review_state)}",
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
    for step in version.reviews:
        decision = model_pb2.ReviewDecision.Name(step.decision).removeprefix("REVIEW_DECISION_")
        comment = f": {step.comment}" if step.comment else ""
        lines.append(f"reviewed:    {decision} {timestamp(step.time)} by {step.actor}{comment}")
    total = sum(f.size_bytes for f in version.files)
    lines.append(
        f"files:       {len(version.files)} ({human_bytes(total)}), manifest sha256 {version.manifest_digest}"
    )
    if version.files:
        rows = [(f.path, human_bytes(f.size_bytes), f.sha256) for f in version.files]
        lines += ["", table(("PATH", "SIZE", "SHA256"), rows)]
    return "\n".join(lines)


async def list_versions(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [
        version
        async for version in client.list_versions(
            args.model, filter=args.filter, order_by=args.order_by, show_deleted=args.show_deleted
        )
    ]
    rows = [
        (
            str(v.number),
            state_name(v.state) + (" (deleted)" if v.deleted else ""),
            review_name(v.review_state),
            ",".join(v.aliases) or "-",
            timestamp(v.create_time),
            v.create_actor or "-",
            _metrics(v.metrics),
        )
        for v in found
    ]
    headers = ("VERSION", "STATE", "REVIEW", "ALIASES", "CREATED", "BY", "METRICS")
    empty = "no versions match" if args.filter else "no versions"
    text = table(headers, rows) if rows else empty
    out.result(text, found)


async def show_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version = await client.get_version(args.version)
    out.result(describe(version), version)
