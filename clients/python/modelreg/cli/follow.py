"""`modelreg follow`: the rollout controller (modelreg/controller/rollout.py) as a command."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from modelreg_api import names

from modelreg import credentials
from modelreg.aio import AsyncClient
from modelreg.cli.arguments import Subcommands, UsageError
from modelreg.cli.output import Output
from modelreg.controller.kubernetes import SERVICE_ACCOUNT_DIR, KubernetesApi
from modelreg.controller.rollout import DeploymentRef, RolloutController


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    follow = commands.add_parser(
        "follow",
        help="roll a Kubernetes Deployment out whenever an alias moves (the rollout controller)",
        parents=[common],
        description=(
            "Follow ALIAS in the audit trail and, each time it moves to another version, patch the "
            "Deployment's pod template annotation modelreg.dev/version (as `kubectl rollout "
            "restart` does), so its pods are replaced and pull the new version. The last event "
            "acted on is kept on the Deployment (annotation modelreg.dev/sequence, in the same "
            "patch), so a restarted controller resumes there: moves made while it was down are "
            "rolled out once, to where the alias points now. Runs until stopped; a broken event "
            "stream or an unreachable API server is retried with backoff. The credential comes "
            "from MODELREG_TOKEN_FILE, read again for every connection (a --token-file is read "
            "once). Needs viewer on the namespace in the registry and get/patch on the Deployment "
            "in Kubernetes (docs/jobs.md)."
        ),
    )
    follow.add_argument("alias", metavar="NS/MODEL@ALIAS")
    follow.add_argument(
        "--deployment",
        required=True,
        metavar="[NAMESPACE/]NAME",
        help="the Deployment to roll out (default namespace: the pod's own)",
    )
    follow.add_argument(
        "--kubernetes-api",
        metavar="URL",
        help="API server (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )
    follow.add_argument(
        "--kubernetes-token-file",
        type=Path,
        metavar="PATH",
        help=f"bearer token for the API server, read for every request (default {SERVICE_ACCOUNT_DIR}/token)",
    )
    follow.add_argument(
        "--kubernetes-ca-file",
        type=Path,
        metavar="PEM",
        help=f"CA of the API server (default {SERVICE_ACCOUNT_DIR}/ca.crt)",
    )
    follow.set_defaults(handler=follow_alias)


def _deployment(text: str) -> DeploymentRef:
    namespace, _, name = text.rpartition("/")
    if not namespace:
        try:
            namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text(encoding="utf-8").strip()
        except OSError:
            raise UsageError(
                "--deployment", "give NAMESPACE/NAME (not in a pod: no namespace file)"
            ) from None
    if not name or "/" in namespace:
        raise UsageError("--deployment", f"{text[:64]!r} is not [NAMESPACE/]NAME")
    return DeploymentRef(namespace, name)


async def follow_alias(args: argparse.Namespace, client: AsyncClient, out: Output) -> None:
    alias = names.parse_version_ref(args.alias, "alias")
    if not isinstance(alias, names.AliasName):
        raise UsageError("alias", "name an alias (NS/MODEL@ALIAS), not a version")
    kubernetes = KubernetesApi.in_cluster(
        os.environ,
        base_url=args.kubernetes_api,
        token_file=args.kubernetes_token_file,
        ca_file=args.kubernetes_ca_file,
    )

    def connect() -> AsyncClient:
        settings = client.settings
        if args.token_file is None:
            # The environment's credential, read again for each connection: the kubelet rewrites
            # a projected service-account token (MODELREG_TOKEN_FILE) before it expires.
            found = credentials.find_credential(os.environ, settings.addresses.metadata)
            settings = replace(
                settings, token=found.token if found else "", token_source=found.source if found else ""
            )
        return AsyncClient(settings=settings)

    if args.kubernetes_ca_file is not None and not args.kubernetes_ca_file.is_file():
        raise UsageError("--kubernetes-ca-file", f"{str(args.kubernetes_ca_file)[:200]} is not a file")
    deployment = _deployment(args.deployment)
    controller = RolloutController(alias, deployment, kubernetes=kubernetes, client=connect, log=out.log)
    await controller.run()
