"""`modelreg compare`: metrics and params of several versions side by side."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from modelreg_api import names

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError
from modelreg.cli.output import Output, table
from modelreg.comparison import ComparedRow, Comparison

DIFFERS = "*"


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare the metrics and params of versions",
        parents=[common],
        description=(
            "Show the summary metrics and the params of two or more versions of a model side by "
            f"side, one row per key; rows where the versions differ are marked {DIFFERS} (a value "
            "missing from a version, shown as -, counts as a difference). Params are flattened to "
            "paths such as optimizer.lr."
        ),
    )
    compare.add_argument("model", metavar="NS/MODEL")
    compare.add_argument(
        "versions", nargs="+", metavar="VERSION", help="version numbers or alias names (e.g. 3 production)"
    )
    compare.add_argument("--differences", action="store_true", help="show only the rows that differ")
    compare.set_defaults(handler=compare_versions)


def cell(value: Any) -> str:
    """A value as a person reads it: whole numbers without `.0`, lists and maps as JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _section(title: str, columns: Sequence[str], rows: Sequence[ComparedRow]) -> str:
    lines = [(DIFFERS if row.differs else "", row.key, *(cell(v) for v in row.values)) for row in rows]
    return table(("", title, *columns), lines)


def render(comparison: Comparison, *, only_differences: bool = False) -> str:
    columns = [str(v.number) for v in comparison.versions]
    if len({names.parse_model_version_name(v.name).model for v in comparison.versions}) > 1:
        columns = [names.short_ref(names.parse_model_version_name(v.name)) for v in comparison.versions]
    sections = []
    for title, rows in (("METRIC", comparison.metrics), ("PARAM", comparison.params)):
        shown = [row for row in rows if row.differs or not only_differences]
        if shown:
            sections.append(_section(title, columns, shown))
    total = len(comparison.metrics) + len(comparison.params)
    differing = len(comparison.differences)
    if total == 0:
        sections.append("the versions have no metrics and no params")
    elif differing == 0:
        sections.append("no differences: every metric and param is the same")
    else:
        sections.append(f"{DIFFERS} differs between the versions ({differing} of {total} rows)")
    return "\n\n".join(sections)


def _reference(model: str, version: str) -> str:
    if version.isdigit():
        return f"{model}/{version}"
    if version.startswith("@"):
        return f"{model}{version}"
    return f"{model}@{version}"


async def compare_versions(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    if len(args.versions) < 2:
        raise UsageError("VERSION", "name at least two versions to compare")
    model = names.short_ref(names.parse_model_ref(args.model, "NS/MODEL"))
    comparison = await client.compare_versions(*(_reference(model, v) for v in args.versions))
    out.result(render(comparison, only_differences=args.differences), comparison.to_dict())
