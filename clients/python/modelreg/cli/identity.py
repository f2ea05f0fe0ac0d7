"""`modelreg login|logout|whoami`: the credential this machine uses, and who it acts as."""

from __future__ import annotations

import argparse
import getpass
import sys

from modelregistry.v1 import access_service_pb2 as acc

from modelreg import access, credentials
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError
from modelreg.cli.output import Output, table, timestamp, to_json
from modelreg.credentials import Credential, CredentialsFile


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    login = commands.add_parser(
        "login",
        help="store a credential for the metadata service's address",
        parents=[common],
        description=(
            "Check a credential (an API token from 'modelreg tokens create', or a JWT) with the "
            "registry and store it in the credentials file (${XDG_CONFIG_HOME:-~/.config}/modelreg/"
            "credentials, mode 0600) for the metadata service's address; later commands to that "
            "address use it. The credential is read from --token-file, else from standard input "
            "(a prompt that does not echo on a terminal), never from an argument, so it stays "
            "out of shell history and process lists. MODELREG_TOKEN and MODELREG_TOKEN_FILE, "
            "when set, still take precedence over the stored one."
        ),
    )
    login.set_defaults(handler=login_command, credential="new")

    logout = commands.add_parser(
        "logout",
        help="forget the stored credential for the metadata service's address",
        parents=[common],
        description=(
            "Remove the credential 'modelreg login' stored for the metadata service's address. "
            "The token itself stays valid: 'modelreg tokens revoke ID' ends it for everyone."
        ),
    )
    logout.set_defaults(handler=logout_command, credential="none")

    whoami = commands.add_parser(
        "whoami",
        help="show who the credential acts as",
        parents=[common],
        description=(
            "Show the principal the credential acts as, its groups, how it authenticated, the "
            "role bindings that apply to it, a restricted token's limits, and where the "
            "credential was found. Exit 8 without a valid credential."
        ),
    )
    whoami.set_defaults(handler=whoami_command)


def read_new_credential() -> Credential:
    """The credential `login` stores, from standard input: prompted (not echoed) on a terminal."""
    if sys.stdin is None:
        raise UsageError("token", "no standard input to read it from; use --token-file")
    if sys.stdin.isatty():
        text = getpass.getpass("modelreg: API token (input is hidden): ")
    else:
        text = sys.stdin.read()
    if not text.strip():
        raise UsageError("token", "nothing on standard input; pipe the token in, or pass --token-file FILE")
    return credentials.given(text, "standard input")


async def login_command(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    identity = await client.whoami()  # UNAUTHENTICATED (exit 8) leaves the file untouched
    address = client.settings.addresses.metadata
    store = CredentialsFile(client.settings.credentials_file)
    store.save(address, client.settings.token, identity.principal)
    text = f"signed in to {address} as {identity.principal} ({identity.authentication})"
    out.result(
        text,
        {
            "metadata_addr": address,
            "principal": identity.principal,
            "authentication": identity.authentication,
            "credentials_file": str(store.path),
        },
    )


async def logout_command(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    address = client.settings.addresses.metadata
    store = CredentialsFile(client.settings.credentials_file)
    removed = store.remove(address)
    if removed is None:
        text = f"not signed in to {address}: nothing to forget"
    else:
        who = f" ({removed.principal})" if removed.principal else ""
        text = f"signed out of {address}{who}; the token stays valid until revoked or expired"
    out.result(text, {"metadata_addr": address, "signed_out": removed is not None})


def describe_restriction(restriction: acc.TokenRestriction) -> str:
    limits = []
    if restriction.namespaces:
        limits.append("only in " + ", ".join(restriction.namespaces))
    if restriction.max_role != acc.ROLE_UNSPECIFIED:
        limits.append(f"at most {access.role_name(restriction.max_role)}")
    return "; ".join(limits)


def describe_identity(identity: acc.CallerIdentity, credential_source: str) -> str:
    lines = [
        f"principal:      {identity.principal}",
        f"groups:         {', '.join(identity.groups) or '-'}",
        f"authentication: {identity.authentication}",
    ]
    if restricted := describe_restriction(identity.restriction):
        lines.append(f"restriction:    {restricted}")
    if credential_source:
        lines.append(f"credential:     {credential_source}")
    if identity.bindings:
        rows = [
            (
                access.namespace_of(b.parent),
                access.role_name(b.role),
                b.principal,
                timestamp(b.create_time),
                b.create_actor or "-",
            )
            for b in identity.bindings
        ]
        lines += ["", table(("NAMESPACE", "ROLE", "VIA", "GRANTED", "BY"), rows)]
    else:
        lines.append("bindings:       none (no role in any namespace)")
    return "\n".join(lines)


async def whoami_command(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    identity = await client.whoami()
    data = to_json(identity)
    data["credential_source"] = client.settings.token_source
    out.result(describe_identity(identity, client.settings.token_source), data)
