"""`modelreg tokens create|list|revoke`: API tokens for people, CI jobs and services."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from modelregistry.v1 import access_service_pb2 as acc

from modelreg import access
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, duration, role
from modelreg.cli.identity import describe_restriction
from modelreg.cli.output import Output, table, timestamp


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("tokens", help="create, list and revoke API tokens")
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="create an API token and print its secret once",
        parents=[common],
        description=(
            "Create an API token for yourself, or (global admins) for --principal, and print its "
            "secret on stdout: only this once, the registry keeps only a hash. Calls made with "
            "it act as its principal, with that principal's roles, narrowed by --namespace and "
            "--max-role. For a CI job: SECRET=$(modelreg tokens create --description ci -q)."
        ),
    )
    create.add_argument(
        "--principal", default="", help="whose token: user:... or serviceaccount:... (default: yourself)"
    )
    create.add_argument("--description", default="", help="what it is for, e.g. 'ci pipeline of fraud'")
    create.add_argument(
        "--ttl", type=duration, metavar="DURATION", help="lifetime: 30d, 12h, 90m (default 90d, at most 366d)"
    )
    create.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="the token works only in NS; repeatable (default: wherever its principal has a role)",
    )
    create.add_argument(
        "--max-role",
        type=role,
        metavar="ROLE",
        help="acts with at most this role: viewer, editor, approver or admin (default: uncapped)",
    )
    create.set_defaults(handler=create_token)

    listing = actions.add_parser(
        "list",
        help="list API tokens (never their secrets)",
        parents=[common],
        description=(
            "List your active API tokens, or (global admins) those of --principal, or everyone's "
            "with --principal -. --all includes revoked and expired ones."
        ),
    )
    listing.add_argument("--principal", default="", help="whose tokens; '-' for everyone's")
    listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
    listing.set_defaults(handler=list_tokens)

    revoke = actions.add_parser(
        "revoke",
        help="revoke an API token",
        parents=[common],
        description=(
            "Revoke an API token by its id (the 16 hex characters after 'mrt_', shown by "
            "'tokens list') or name (tokens/ID). Calls with it fail from now on (exit 8)."
        ),
    )
    revoke.add_argument("token", metavar="ID")
    revoke.set_defaults(handler=revoke_token)


def token_id(token: acc.ApiToken) -> str:
    return token.name.removeprefix("tokens/")


def status(token: acc.ApiToken, now: datetime | None = None) -> str:
    if token.HasField("revoke_time"):
        return "revoked"
    now = now or datetime.now(UTC)
    if token.HasField("expire_time") and token.expire_time.ToDatetime(tzinfo=UTC) <= now:
        return "expired"
    return "active"


def token_rows(found: list[acc.ApiToken]) -> str:
    rows = [
        (
            token_id(t),
            t.principal,
            status(t),
            timestamp(t.expire_time) or "-",
            timestamp(t.last_used_time) or "never",
            describe_restriction(t.restriction) or "-",
            t.description.splitlines()[0] if t.description else "",
        )
        for t in found
    ]
    headers = ("ID", "PRINCIPAL", "STATUS", "EXPIRES", "LAST USED", "RESTRICTION", "DESCRIPTION")
    return table(headers, rows)


async def create_token(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    token, secret = await client.create_token(
        args.principal or None,
        description=args.description,
        ttl=args.ttl,
        namespaces=args.namespace,
        max_role=args.max_role,
    )
    if not args.quiet:
        out.log(
            f"created token {token_id(token)} for {token.principal}, expires {timestamp(token.expire_time)}"
        )
    # Always, even with -q: losing the secret means creating another token.
    out.log("warning: the secret below is shown only this once; store it now, like a password")
    out.result(secret, {"token": token, "secret": secret})


async def list_tokens(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [t async for t in client.list_tokens(args.principal or None, show_inactive=args.all)]
    out.result(token_rows(found) if found else "no tokens", found)


async def revoke_token(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    token = await client.revoke_token(access.token_name(args.token, "ID"))
    out.result(f"revoked token {token_id(token)} of {token.principal}", token)
