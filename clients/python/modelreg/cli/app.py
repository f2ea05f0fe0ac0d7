"""The `modelreg` command: argument parsing, the client, exit codes and one-line errors.

Exit codes (also in `modelreg --help`): 0 success; 1 any other failure; 2 bad usage or invalid
argument; 3 not found; 4 conflict (already exists, precondition failed, concurrent change);
5 integrity (a digest or size mismatch, data loss, an unsafe manifest); 6 a service unavailable
or too slow; 7 refused by a governance rule (e.g. approving one's own version); 8 not
authenticated (no credential, or an expired, revoked or unknown one); 9 permission denied by the
caller's roles; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import grpc
from modelreg_api.names import InvalidResourceName

from modelreg import credentials
from modelreg.aio import AsyncClient
from modelreg.cli import (
    aliases,
    compare,
    events,
    follow,
    history,
    identity,
    models,
    namespaces,
    review,
    tokens,
    transfer,
    versions,
)
from modelreg.cli.arguments import UsageError, token_file
from modelreg.cli.output import Output
from modelreg.credentials import Credential, CredentialError
from modelreg.errors import (
    DestinationInTheWay,
    IntegrityError,
    ModelregError,
    RegistryError,
    RoleDenied,
    Unauthenticated,
    UnsafeManifest,
)
from modelreg.settings import ClientSettings

Handler = Callable[[argparse.Namespace, AsyncClient, Output], Awaitable[None]]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_INTEGRITY = 5
EXIT_UNAVAILABLE = 6
EXIT_DENIED = 7  # a governance rule (four eyes: SELF_APPROVAL_NOT_ALLOWED), not a role
EXIT_UNAUTHENTICATED = 8
EXIT_ROLE_DENIED = 9
EXIT_INTERRUPTED = 130

_EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_CONFLICT,
    grpc.StatusCode.ABORTED: EXIT_CONFLICT,
    grpc.StatusCode.DATA_LOSS: EXIT_INTEGRITY,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_UNAUTHENTICATED,
}

_SIGN_IN = "sign in with 'modelreg login', or set MODELREG_TOKEN or MODELREG_TOKEN_FILE, or pass --token-file"

_EPILOG = """\
references: a model is NAMESPACE/MODEL; a version is NAMESPACE/MODEL/NUMBER or
NAMESPACE/MODEL@ALIAS (full resource names are accepted too).

credential (the first one set): --token-file, MODELREG_TOKEN, MODELREG_TOKEN_FILE, the
login stored by `modelreg login` for the metadata address, and for a registry on this
machine the local stack's admin token (${MODELREG_DATA_DIR:-.data}/admin.token).

environment: MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR (default: what `make run`
starts), MODELREG_CACHE_DIR (default ~/.cache/modelreg), MODELREG_TLS (auto|true|false;
auto: TLS unless the address is loopback), MODELREG_TLS_CA_FILE,
MODELREG_TLS_CLIENT_CERT_FILE and MODELREG_TLS_CLIENT_KEY_FILE (mTLS).

exit codes: 0 ok, 1 failure, 2 usage or invalid argument, 3 not found, 4 conflict (also a
pull whose destination holds other files under the version's paths), 5 integrity
(digest/size mismatch), 6 service unavailable, 7 refused by a governance rule (four eyes),
8 not authenticated, 9 permission denied by role, 130 interrupted."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command's --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"modelreg: error: {message} (see '{self.prog} --help')\n")


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command (`modelreg -o json pull ...` and
    `modelreg pull ... -o json`); only the outermost parser holds the defaults."""
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument("--metadata-addr", metavar="HOST:PORT", default=default, help="metadata service")
    group.add_argument("--artifact-addr", metavar="HOST:PORT", default=default, help="artifact service")
    group.add_argument(
        "--token-file",
        type=token_file,
        metavar="PATH",
        default=default,
        help="a file holding the credential to use (default: $MODELREG_TOKEN, ...; see below)",
    )
    group.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="TLS to both services, or not (default: $MODELREG_TLS, auto: TLS unless loopback)",
    )
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        default=default,
        help="CA to trust (default: $MODELREG_TLS_CA_FILE or the system's)",
    )
    group.add_argument(
        "--timeout", type=float, metavar="SECONDS", default=default, help="deadline per call (default 30)"
    )
    group.add_argument("--cache-dir", metavar="DIR", default=default, help="local blob cache")
    group.add_argument(
        "--parallel", type=int, metavar="N", default=default, help="files transferred at once (default 4)"
    )
    group.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default=argparse.SUPPRESS if suppress else "text",
        help="result format (default text)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="no progress or log lines",
    )
    return common


def _package_version() -> str:
    try:
        return metadata.version("modelreg")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modelreg",
        description="Register, find, promote and fetch models in a modelreg registry.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"modelreg {_package_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    common = _common_options(suppress=True)
    for module in (
        identity,
        tokens,
        namespaces,
        models,
        versions,
        transfer,
        compare,
        aliases,
        review,
        events,
        history,
        follow,
    ):
        module.register(commands, common)
    return parser


# Failures on this machine, which have no gRPC status.
_EXIT_BY_LOCAL_ERROR: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    (CredentialError, EXIT_UNAUTHENTICATED),
    (DestinationInTheWay, EXIT_CONFLICT),
    ((IntegrityError, UnsafeManifest), EXIT_INTEGRITY),
    ((InvalidResourceName, UsageError), EXIT_USAGE),
)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, RoleDenied):
        return EXIT_ROLE_DENIED
    if isinstance(error, RegistryError):
        return _EXIT_BY_CODE.get(error.code, EXIT_FAILURE)
    for kinds, code in _EXIT_BY_LOCAL_ERROR:
        if isinstance(error, kinds):
            return code
    return EXIT_FAILURE


def _advice(error: RegistryError, settings: ClientSettings | None) -> str:
    """What to do about an authentication or role failure, appended to the server's message."""
    if isinstance(error, Unauthenticated):
        source = settings.token_source if settings is not None else ""
        if settings is not None and not settings.token:
            return f"; none is configured: {_SIGN_IN}"
        return f" (credential from {source}); {_SIGN_IN}" if source else f"; {_SIGN_IN}"
    if isinstance(error, RoleDenied) and error.permission:
        # The services name the permission in the message; say it when another server does not.
        if error.permission in error.message:
            return "; ask an admin of the namespace for a role that has it"
        on = f" on {error.resource}" if error.resource else ""
        return f" (missing permission {error.permission}{on}); ask an admin of the namespace for a role"
    return ""


def _describe(error: BaseException, settings: ClientSettings | None = None) -> tuple[str, dict[str, Any]]:
    """The one-line message and the structured fields of an error."""
    if isinstance(error, RegistryError):
        detail = error.code.name
        if error.reason and error.reason != detail:
            detail += f" {error.reason}"
        fields: dict[str, Any] = {
            "code": error.code.name,
            "reason": error.reason,
            "field": error.field,
            "message": error.message,
            "metadata": error.metadata,
            "request_id": error.request_id,
        }
        return f"{error.message}{_advice(error, settings)} [{detail}]", fields
    if isinstance(error, ModelregError):
        suffix = f" [{error.reason}]" if error.reason else ""
        return f"{error.message}{suffix}", {"reason": error.reason, "message": error.message}
    if isinstance(error, InvalidResourceName):
        return str(error), {"field": error.field, "message": error.message}
    if isinstance(error, UsageError):
        return str(error), {"field": error.option, "message": error.message}
    if isinstance(error, OSError):
        message = f"{error.filename}: {error.strerror}" if error.filename else str(error)
        return message, {"message": message}
    return str(error), {"message": str(error)}


def _report(error: BaseException, out: Output, settings: ClientSettings | None = None) -> int:
    message, fields = _describe(error, settings)
    if out.json_mode:
        payload = {"error": {key: value for key, value in fields.items() if value}}
        out.stderr.write(json.dumps(payload, ensure_ascii=False) + "\n")
    # One line, always: a person reads it, a log collector keeps it whole.
    out.log(f"error: {' '.join(message.split())}")
    return _exit_code(error)


def _credential(args: argparse.Namespace) -> Credential | None:
    """The credential the command presents: --token-file, else (None) the environment's sources.

    `login` presents the credential it is about to store (--token-file or standard input) and
    `logout` none: neither needs, nor should fail on, the credential configured now.
    """
    purpose = getattr(args, "credential", "")
    if purpose == "new":
        return args.token_file or identity.read_new_credential()
    if purpose == "none":
        return credentials.given("", "logout")
    token: Credential | None = args.token_file
    return token


def _settings(args: argparse.Namespace) -> ClientSettings:
    """Settings from the environment, read once, with the connection options applied: the
    addresses, the credential for them (which may be refused) and TLS. The others go to
    AsyncClient."""
    settings = ClientSettings.from_environment(
        metadata_addr=args.metadata_addr, artifact_addr=args.artifact_addr, credential=_credential(args)
    )
    tls = settings.tls
    if args.tls is not None:
        tls = replace(tls, mode="on" if args.tls else "off")
    if args.ca_file is not None:
        tls = replace(tls, ca_file=Path(args.ca_file).expanduser())
    return replace(settings, tls=tls)


async def _run(args: argparse.Namespace, settings: ClientSettings, out: Output) -> None:
    handler: Handler = args.handler
    async with AsyncClient(
        settings=settings,
        timeout=args.timeout,
        cache_dir=args.cache_dir,
        parallel_files=args.parallel,
    ) as client:
        await handler(args, client, out)


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # Kubernetes stops a container with SIGTERM: unwind like Ctrl-C, so in-flight transfers are
    # cancelled and their temporary files removed before the process exits.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(json_mode=args.output == "json")
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    settings: ClientSettings | None = None
    try:
        settings = _settings(args)
        asyncio.run(_run(args, settings, out))
    except KeyboardInterrupt:
        out.log("error: interrupted")
        return EXIT_INTERRUPTED
    except (ModelregError, InvalidResourceName, UsageError, OSError) as error:
        return _report(error, out, settings)
    return 0


def entry_point() -> NoReturn:
    sys.exit(main())
