"""`modelreg review submit|approve|reject`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from modelreg_api import names
from modelregistry.v1 import model_pb2

from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands
from modelreg.cli.output import Output
from modelreg.cli.versions import review_name

_STEPS = {
    "submit": (
        "submit a version for review",
        "Ask for VERSION to be approved (again, after a rejection). The step is recorded with "
        "the principal of your credential and the comment.",
    ),
    "approve": (
        "approve a submitted version",
        "Approve a submitted, READY version (needs the approver role). The approver (the "
        "principal of your credential) must not be the version's creator unless the namespace "
        "allows self-approval (four eyes): otherwise exit 7, PERMISSION_DENIED "
        "SELF_APPROVAL_NOT_ALLOWED.",
    ),
    "reject": (
        "reject a submitted version",
        "Reject a submitted version; it can be submitted again.",
    ),
}


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("review", help="submit, approve or reject versions")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)
    for step, (summary, description) in _STEPS.items():
        parser = actions.add_parser(step, help=summary, parents=[common], description=description)
        parser.add_argument("version", metavar="NS/MODEL/VERSION")
        parser.add_argument("--comment", default="", help="why, or what to look at (at most 2048 characters)")
        parser.add_argument(
            "--etag", default="", help="only if the version still has this etag (else exit 4, ABORTED)"
        )
        parser.set_defaults(handler=review, step=step)


async def review(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    steps: dict[str, Callable[..., Awaitable[model_pb2.ModelVersion]]] = {
        "submit": client.submit_for_review,
        "approve": client.approve_version,
        "reject": client.reject_version,
    }
    version = await steps[args.step](args.version, comment=args.comment, etag=args.etag)
    name = names.short_ref(names.parse_model_version_name(version.name))
    out.result(f"{name}: review {review_name(version.review_state)}", version)
