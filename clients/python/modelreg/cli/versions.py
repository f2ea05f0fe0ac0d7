"""`modelreg versions list|show|delete|undelete|purge`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from google.protobuf import json_format
from modelreg_api import names
from modelregistry.v1 import model_pb2

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError
from modelreg.cli.output import Output, human_bytes, table, timestamp


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("versions", help="list, show, delete and purge model versions")
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

    delete = actions.add_parser(
        "delete",
        help="soft-delete a version (undelete restores it)",
        parents=[common],
        description=(
            "Soft-delete VERSION: reads and lists no longer show it (versions list --show-deleted "
            "does) and its files stay in the registry until it is purged. Refused while an alias "
            "points at it (exit 4, VERSION_HAS_ALIASES)."
        ),
    )
    delete.add_argument("version", metavar="NS/MODEL/VERSION")
    delete.add_argument(
        "--etag", default="", help="only if the version still has this etag (else exit 4, ABORTED)"
    )
    delete.set_defaults(handler=delete_version)

    undelete = actions.add_parser(
        "undelete",
        help="restore a soft-deleted version",
        parents=[common],
        description="Restore a soft-deleted VERSION (a purged one is gone for good).",
    )
    undelete.add_argument("version", metavar="NS/MODEL/VERSION")
    undelete.set_defaults(handler=undelete_version)

    purge = actions.add_parser(
        "purge",
        help="remove a soft-deleted version for good (irreversible; needs --yes)",
        parents=[common],
        description=(
            "Remove a soft-deleted VERSION for good: its metadata, manifest and metric history. Its "
            "files no longer count as used, so the artifact service's garbage collection deletes "
            "those no other version lists once their grace period is over. The version number is "
            "never reused and the audit trail keeps its history, with a MODEL_VERSION_PURGED event. "
            "This cannot be undone, so it asks for --yes (it never prompts). A version that is not "
            "deleted exits 4 (NOT_DELETED: delete it first); one purged already exits 3."
        ),
    )
    purge.add_argument("version", metavar="NS/MODEL/VERSION")
    purge.add_argument("--yes", action="store_true", help="confirm: the version cannot be restored")
    purge.add_argument(
        "--etag", default="", help="only if the version still has this etag (else exit 4, ABORTED)"
    )
    purge.set_defaults(handler=purge_version)


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


async def delete_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version = await client.delete_version(args.version, etag=args.etag)
    name = names.short_ref(names.parse_model_version_name(version.name))
    out.result(f"deleted {name} (undelete restores it; purge removes it for good)", version)


async def undelete_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    version = await client.undelete_version(args.version)
    out.result(f"restored {names.short_ref(names.parse_model_version_name(version.name))}", version)


async def purge_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    name = names.parse_version_ref(args.version)
    if not args.yes:
        raise UsageError("--yes", f"purging {names.short_ref(name)} cannot be undone; confirm with --yes")
    await client.purge_version(args.version, etag=args.etag)
    out.result(f"purged {names.short_ref(name)}", {"purged": str(name)})
