"""`modelreg push` and `modelreg pull`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from modelreg_api import names
from modelregistry.v1 import artifact_service_pb2 as art

from modelreg import jobs
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError, json_file, key_value, metric, param, progress_for
from modelreg.cli.output import Output, human_bytes, table
from modelreg.errors import IntegrityError


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    push = commands.add_parser(
        "push",
        help="register a file or directory as a new version",
        parents=[common],
        description=(
            "Create the model if needed, create a version with the given metadata, upload PATH "
            "(a file or every file under a directory) in parallel, seal the version and set the "
            "alias. Prints the new version (NS/MODEL/NUMBER). Files the registry already stores "
            "(in any model) are recorded without sending their bytes. Running the same push again "
            "after an interruption continues the version it started, and each large file from the "
            "last byte the service committed."
        ),
    )
    push.add_argument("model", metavar="NS/MODEL")
    push.add_argument("path", metavar="PATH")
    push.add_argument("--description", default="")
    push.add_argument(
        "--param",
        type=param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter; VALUE is JSON if it parses (0.1, true, [1,2]), else text; repeatable",
    )
    push.add_argument("--params-file", type=json_file, metavar="FILE", help="params as a JSON object")
    push.add_argument("--metric", type=metric, action="append", default=[], metavar="KEY=NUMBER")
    push.add_argument(
        "--metrics-file", type=json_file, metavar="FILE", help="metrics as a JSON object of numbers"
    )
    push.add_argument("--tag", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    push.add_argument("--alias", help="point this alias at the new version once sealed")
    push.add_argument("--git-commit", default="", metavar="SHA", help="lineage: source commit")
    push.add_argument("--git-repo", default="", metavar="URL", help="lineage: source repository")
    push.add_argument("--run-id", default="", metavar="ID", help="lineage: training run id")
    push.add_argument("--run-url", default="", metavar="URL", help="lineage: training run URL")
    push.add_argument(
        "--parent", default="", metavar="NS/MODEL/VERSION", help="lineage: the version this one derives from"
    )
    push.add_argument(
        "--lineage-file",
        type=json_file,
        metavar="FILE",
        help='lineage as JSON: {"source_commit": ..., "datasets": [{"uri": ..., "digest": "sha256:...", '
        '"role": "train"}], ...}; the --git-*, --run-* and --parent options override its fields',
    )
    push.add_argument(
        "--request-id",
        default="",
        metavar="ID",
        help="the push's identity (e.g. a Kubernetes Job's uid): repeating the push with it, from any "
        "machine, continues the version it created instead of creating another",
    )
    push.add_argument(
        "--signature-file", type=json_file, metavar="FILE", help='{"inputs": [...], "outputs": [...]} as JSON'
    )
    push.add_argument(
        "--no-create-model", action="store_true", help="fail instead of registering a missing model"
    )
    push.add_argument(
        "--version",
        type=int,
        metavar="NUMBER",
        help="add the files to this existing PENDING version (no metadata options) and seal it",
    )
    push.add_argument(
        "--replace",
        action="store_true",
        help="replace files the version holds at the same paths with other content (audited); "
        "without it such a file is refused (exit code of ALREADY_EXISTS)",
    )
    push.set_defaults(handler=push_version)

    pull = commands.add_parser(
        "pull",
        help="download and verify a version into a directory",
        parents=[common],
        description=(
            "Download every file of a version into DEST, verifying each SHA-256; nothing is placed "
            "under its final name before it is verified. Files already in the local cache are not "
            "transferred again. Suitable for a Kubernetes init container: without a terminal it "
            "logs plain lines, and any mismatch exits non-zero."
        ),
    )
    pull.add_argument("version", metavar="NS/MODEL@ALIAS|NS/MODEL/VERSION")
    pull.add_argument("destination", metavar="DEST")
    pull.add_argument(
        "--no-cache", action="store_true", help="keep nothing outside DEST (stage inside it, then clean up)"
    )
    pull.add_argument(
        "--copy", action="store_true", help="copy files out of the cache instead of hard-linking (read-only)"
    )
    pull.add_argument("--allow-pending", action="store_true", help="also pull a version that is not sealed")
    pull.add_argument(
        "--force",
        action="store_true",
        help="replace whatever DEST holds under the version's paths (other files are never touched)",
    )
    pull.add_argument(
        "--marker",
        metavar="FILE",
        help="once every file is verified and in place, write a JSON file naming the version, "
        "its number and manifest digest (for the model server; see docs/jobs.md)",
    )
    pull.set_defaults(handler=pull_version)

    verify = commands.add_parser(
        "verify",
        help="re-check every stored file of a version against its SHA-256",
        parents=[common],
        description=(
            "Have the artifact service re-read every file of VERSION from object storage and check "
            "its size and SHA-256 against the manifest. Prints what was checked and every file that "
            "is missing or damaged; exits 5 if any is."
        ),
    )
    verify.add_argument("version", metavar="NS/MODEL/VERSION|NS/MODEL@ALIAS")
    verify.set_defaults(handler=verify_version)


def _lineage(args: argparse.Namespace) -> dict[str, Any]:
    lineage: dict[str, Any] = {}
    if args.lineage_file is not None:
        try:
            lineage.update(jobs.lineage_from(args.lineage_file))
        except ValueError as exc:
            raise UsageError("--lineage-file", str(exc)) from None
    fields = {
        "source_commit": args.git_commit,
        "source_repository": args.git_repo,
        "training_run_id": args.run_id,
        "training_run_url": args.run_url,
    }
    if args.parent:
        version = names.parse_version_ref(args.parent, "--parent")
        if isinstance(version, names.AliasName):
            raise UsageError("--parent", "name a version by number, not an alias")
        fields["parent_model_version"] = str(version)
    lineage.update({key: value for key, value in fields.items() if value})
    return lineage


def _metrics(args: argparse.Namespace) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if args.metrics_file is not None:
        try:
            metrics.update(jobs.metrics_from(args.metrics_file))
        except ValueError as exc:
            raise UsageError("--metrics-file", str(exc)) from None
    metrics.update(dict(args.metric))
    return metrics


async def push_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    params: dict[str, Any] = {}
    if args.params_file is not None:
        if not isinstance(args.params_file, dict):
            raise UsageError("--params-file", "must hold a JSON object")
        params.update(args.params_file)
    params.update(dict(args.param))
    result = await client.push(
        args.model,
        args.path,
        description=args.description,
        params=params,
        metrics=_metrics(args),
        tags=dict(args.tag),
        lineage=_lineage(args),
        signature=args.signature_file,
        alias=args.alias,
        create_model=not args.no_create_model,
        progress=progress_for(args, out),
        version=args.version,
        replace=args.replace,
        request_id=args.request_id,
    )
    version = names.parse_model_version_name(result.version.name)
    if not args.quiet and not out.json_mode:
        sent = f"uploaded {human_bytes(result.uploaded_bytes)}"
        if result.skipped_bytes:
            why = "already in the registry or left by an interrupted push"
            sent += f", {human_bytes(result.skipped_bytes)} not sent ({why})"
        alias = f", alias {result.alias}" if result.alias else ""
        out.log(f"sealed {names.short_ref(version)} ({len(result.files)} files; {sent}{alias})")
    out.result(names.short_ref(version), result.to_dict())


async def pull_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    result = await client.pull(
        args.version,
        args.destination,
        use_cache=not args.no_cache,
        copy=args.copy,
        allow_pending=args.allow_pending,
        force=args.force,
        progress=progress_for(args, out),
    )
    version = names.short_ref(names.parse_model_version_name(result.version.name))
    in_place = f", {human_bytes(result.in_place_bytes)} already in place" if result.in_place_bytes else ""
    text = (
        f"{version} -> {result.destination} ({len(result.files)} files verified; "
        f"{human_bytes(result.received_bytes)} received, {human_bytes(result.cached_bytes)} from cache"
        f"{in_place})"
    )
    if args.marker:
        try:
            await asyncio.to_thread(jobs.write_marker, Path(args.marker), result, args.version)
        except jobs.MarkerInTheWay as exc:
            raise UsageError("--marker", str(exc)) from None
    out.result(text, result.to_dict())


async def verify_version(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    report = await client.verify_version(args.version)
    version = names.short_ref(names.parse_model_version_name(report.model_version))
    checked = f"{report.checked_files} files ({human_bytes(report.checked_bytes)}) re-read from storage"
    if not report.problems:
        out.result(f"{version}: {checked}; every file matches its SHA-256", report)
        return
    rows = [
        (p.path, art.BlobProblem.Name(p.problem).removeprefix("BLOB_PROBLEM_"), p.detail)
        for p in report.problems
    ]
    out.result(f"{version}: {checked}\n\n{table(('PATH', 'PROBLEM', 'DETAIL'), rows)}", report)
    first = art.BlobProblem.Name(report.problems[0].problem).removeprefix("BLOB_PROBLEM_")
    raise IntegrityError(
        f"{version}: {len(report.problems)} of {report.checked_files} files do not match the manifest",
        reason=first,
    )
