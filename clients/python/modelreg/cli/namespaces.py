"""`modelreg namespaces list|show|update|grant|revoke|bindings`."""

from __future__ import annotations

import argparse

from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import model_pb2

from modelreg import access
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError, key_value, role
from modelreg.cli.output import Output, table, timestamp

_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false") from None


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "namespaces", help="list, show and configure namespaces (teams); grant and revoke roles"
    )
    actions = group.add_subparsers(title="commands", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="list the namespaces", parents=[common], description="List every namespace."
    )
    listing.set_defaults(handler=list_namespaces)

    show = actions.add_parser(
        "show",
        help="show a namespace and its settings",
        parents=[common],
        description="Show a namespace and its governance settings.",
    )
    show.add_argument("namespace", metavar="NS")
    show.set_defaults(handler=show_namespace)

    update = actions.add_parser(
        "update",
        help="change a namespace's settings",
        parents=[common],
        description=(
            "Change the settings given; the others stay. --allow-self-approval true lets the "
            "creator of a version approve it (small teams); by default the approver must be "
            "someone else (four eyes). A namespace exists once a model was created in it."
        ),
    )
    update.add_argument("namespace", metavar="NS")
    update.add_argument(
        "--allow-self-approval",
        type=boolean,
        metavar="true|false",
        help="may a version's creator approve it?",
    )
    update.add_argument("--display-name")
    update.add_argument("--description")
    update.add_argument(
        "--label",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="replaces every label; repeatable",
    )
    update.add_argument(
        "--etag", default="", help="only if the namespace still has this etag (else exit 4, ABORTED)"
    )
    update.set_defaults(handler=update_namespace)

    roles = (
        "Roles, each including the ones before it: viewer (read, search, pull), editor (create "
        "and push, submit for review, move unprotected aliases), approver (approve or reject, "
        "move protected aliases), admin (settings, alias protection, roles, delete, purge). "
        "NS '-' means every namespace (admin there is a global admin). Needs the admin role."
    )
    for verb, summary in (
        ("grant", "give a principal a role in a namespace"),
        ("revoke", "take a role back"),
    ):
        binding = actions.add_parser(
            verb,
            help=summary,
            parents=[common],
            description=f"{summary[0].upper()}{summary[1:]}. {roles}",
        )
        binding.add_argument("namespace", metavar="NS", help="a namespace, or '-' for every namespace")
        binding.add_argument(
            "principal", metavar="PRINCIPAL", help="user:EMAIL, serviceaccount:NS/NAME or group:NAME"
        )
        binding.add_argument("role", metavar="ROLE", type=role, help="viewer, editor, approver or admin")
        binding.set_defaults(handler=grant_role if verb == "grant" else revoke_role)

    bindings = actions.add_parser(
        "bindings",
        help="list who has which role in a namespace",
        parents=[common],
        description=(
            "List the role bindings of NS, or with '-' the bindings that hold in every namespace. "
            "Needs a role in NS."
        ),
    )
    bindings.add_argument("namespace", metavar="NS", help="a namespace, or '-' for every namespace")
    bindings.set_defaults(handler=list_bindings)


def describe(namespace: model_pb2.Namespace) -> str:
    lines = [
        f"namespace:           {namespace.name.removeprefix('namespaces/')}",
        f"name:                {namespace.name}",
        f"display name:        {namespace.display_name}",
        f"allow self-approval: {'yes' if namespace.allow_self_approval else 'no (four eyes)'}",
        f"created:             {timestamp(namespace.create_time)} by {namespace.create_actor or '-'}",
    ]
    if namespace.labels:
        lines.append(
            "labels:              " + ", ".join(f"{k}={v}" for k, v in sorted(namespace.labels.items()))
        )
    if namespace.description:
        lines.append(f"description:         {namespace.description}")
    return "\n".join(lines)


async def list_namespaces(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    found = [namespace async for namespace in client.list_namespaces()]
    rows = [
        (
            n.name.removeprefix("namespaces/"),
            "yes" if n.allow_self_approval else "no",
            timestamp(n.create_time),
            n.description.splitlines()[0] if n.description else "",
        )
        for n in found
    ]
    headers = ("NAMESPACE", "SELF-APPROVAL", "CREATED", "DESCRIPTION")
    out.result(table(headers, rows) if rows else "no namespaces", found)


async def show_namespace(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    namespace = await client.get_namespace(args.namespace)
    out.result(describe(namespace), namespace)


async def update_namespace(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    settings = (args.allow_self_approval, args.display_name, args.description, args.label)
    if all(setting is None for setting in settings):
        raise UsageError(
            "settings",
            "nothing to update; give --allow-self-approval, --display-name, --description or --label",
        )
    namespace = await client.update_namespace(
        args.namespace,
        allow_self_approval=args.allow_self_approval,
        display_name=args.display_name,
        description=args.description,
        labels=None if args.label is None else dict(args.label),
        etag=args.etag,
    )
    out.result(describe(namespace), namespace)


def _in(namespace: str) -> str:
    return "every namespace" if namespace == "-" else namespace


async def grant_role(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    parent = access.binding_parent(args.namespace, "NS")
    binding = await client.grant_role(parent, args.principal, args.role)
    namespace = access.namespace_of(binding.parent)
    out.result(f"granted {args.role} in {_in(namespace)} to {binding.principal}", binding)


async def revoke_role(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    parent = access.binding_parent(args.namespace, "NS")
    await client.revoke_role(parent, args.principal, args.role)
    namespace = access.namespace_of(parent)
    out.result(
        f"revoked {args.role} in {_in(namespace)} from {args.principal}",
        {"parent": parent, "principal": args.principal, "role": args.role, "revoked": True},
    )


def binding_rows(found: list[acc.RoleBinding]) -> str:
    rows = [
        (
            access.namespace_of(b.parent),
            b.principal,
            access.role_name(b.role),
            timestamp(b.create_time),
            b.create_actor or "-",
        )
        for b in found
    ]
    return table(("NAMESPACE", "PRINCIPAL", "ROLE", "GRANTED", "BY"), rows)


async def list_bindings(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    parent = access.binding_parent(args.namespace, "NS")
    found = [binding async for binding in client.list_role_bindings(parent)]
    out.result(binding_rows(found) if found else f"no role bindings in {_in(args.namespace)}", found)
