"""Follow an alias and roll a Deployment out to each version it moves to.

The controller watches one alias (`team/model@production`) in the audit trail and, when the
alias moves to version N, patches the serving Deployment's pod template annotation
`modelreg.dev/version: N`. Kubernetes then replaces the pods, as `kubectl rollout restart` does,
and each new pod's init container pulls the alias again.

Where the controller is (its cursor: the sequence number of the last event it acted on) is kept
on the Deployment itself, in the annotation `modelreg.dev/sequence`, written in the same patch
as the version. One write holds both the effect and the cursor, so:

- a controller killed at any moment has either rolled out and advanced its cursor, or neither:
  a restart never rolls out twice for one move and never skips one;
- the patch carries the Deployment's `resourceVersion`, so of two controllers (or a controller
  and an edit of the Deployment) only one write lands, and the loser reads the Deployment again;
- no volume, no ConfigMap and no other RBAC than get/patch on the one Deployment are needed,
  and `kubectl describe` shows which version and event the Deployment was rolled out for.

After a (re)start the controller lists the alias's events after the cursor and acts only on the
last one: five moves while it was down are one rollout, to where the alias points now. Then it
watches from there. A version equal to the one the Deployment has is no rollout (an event seen
twice, a move away and back). A deleted alias rolls nothing out: the Deployment keeps serving the
version it has. Events of other aliases and models are filtered out by the service and again here.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelreg_api.names import AliasName, short_ref
from modelregistry.v1 import event_pb2

from modelreg.aio import AsyncClient
from modelreg.controller.kubernetes import KubernetesApi, KubernetesError, KubernetesUnavailable
from modelreg.errors import DeadlineExceeded, Unauthenticated, Unavailable
from modelreg.settings import RetryPolicy

VERSION_ANNOTATION = "modelreg.dev/version"
SEQUENCE_ANNOTATION = "modelreg.dev/sequence"
ALIAS_ANNOTATION = "modelreg.dev/alias"
ALIAS_ACTIONS = ("ALIAS_CREATED", "ALIAS_MOVED", "ALIAS_DELETED")
# A conflicting write is retried at once after reading the Deployment again; a Deployment that
# changes this often under us is somebody else's loop, reported rather than fought.
_CONFLICT_RETRIES = 5

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DeploymentRef:
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Rollout:
    """What the Deployment says it was last rolled out for."""

    version: int | None  # the pod template's `modelreg.dev/version`
    sequence: int  # the event that rollout was for; 0: none yet (or for another alias)
    resource_version: str

    @classmethod
    def of(cls, deployment: dict[str, Any], alias: AliasName) -> Rollout:
        metadata = deployment.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
        version = str((template.get("annotations") or {}).get(VERSION_ANNOTATION, ""))
        sequence = str(annotations.get(SEQUENCE_ANNOTATION, ""))
        # A cursor written while following another alias says nothing about this one.
        ours = annotations.get(ALIAS_ANNOTATION) == str(alias)
        return cls(
            version=int(version) if version.isdigit() else None,
            sequence=int(sequence) if ours and sequence.isdigit() else 0,
            resource_version=str(metadata.get("resourceVersion", "")),
        )


@dataclass(frozen=True, slots=True)
class Move:
    """Where an event leaves the alias: at `version`, or deleted (None)."""

    sequence: int
    version: int | None


def move_of(event: event_pb2.Event, alias: AliasName) -> Move | None:
    """The alias's new position after `event`; None for an event that does not move it."""
    if event.resource != str(alias) or event.action not in ALIAS_ACTIONS:
        return None
    if event.action == "ALIAS_DELETED":
        return Move(event.sequence, None)
    number = event.after.fields.get("version_number")
    if number is None:  # a write that changed only who moved it: the version stays
        return None
    return Move(event.sequence, int(number.number_value))


class RolloutController:
    def __init__(
        self,
        alias: AliasName,
        deployment: DeploymentRef,
        *,
        kubernetes: KubernetesApi,
        client: Callable[[], AsyncClient],
        log: Log,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.alias = alias
        self.deployment = deployment
        self._kubernetes = kubernetes
        # A new client for every connection: it reads the credential again (MODELREG_TOKEN_FILE),
        # which the kubelet rotates under a long-running process.
        self._client = client
        self._log = log
        self._retry = retry or RetryPolicy(attempts=0, initial_backoff=0.5, max_backoff=30.0)
        self._connected = False

    async def run(self) -> None:
        """Follow the alias until cancelled. Transient failures of the registry or of the
        Kubernetes API are retried with backoff from the cursor; others are raised."""
        failures = 0
        while True:
            self._connected = False
            try:
                await self._follow()
            except (Unavailable, DeadlineExceeded, Unauthenticated, KubernetesUnavailable) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except KubernetesError as exc:
                if not (exc.transient or exc.conflict):
                    raise
                problem = str(exc)
            else:
                problem = "the event stream ended"
            # The backoff grows while nothing works and starts over after a connection that did.
            failures = 1 if self._connected else failures + 1
            delay = random.uniform(0, self._retry.backoff(failures))  # noqa: S311 - jitter
            self._log(f"{problem}; following again in {delay:.1f} s")
            await asyncio.sleep(delay)

    async def _follow(self) -> None:
        current = await self._read()
        async with self._client() as client:
            scope: dict[str, Any] = {"resource": str(self.alias), "actions": ALIAS_ACTIONS}
            last: Move | None = None
            position = current.sequence
            async for event in client.list_events(after_sequence=current.sequence, **scope):
                position = event.sequence
                last = move_of(event, self.alias) or last
            self._connected = True
            since = f"events since: up to {position}" if position > current.sequence else "no events since"
            self._log(
                f"following {short_ref(self.alias)} for deployment {self.deployment}: at version "
                f"{_shown(current.version)}, rolled out for event {current.sequence}; {since}"
            )
            if last is not None:
                current = await self._apply(current, last)
            async for event in client.watch_events(after_sequence=position, reconnect=False, **scope):
                move = move_of(event, self.alias)
                if move is not None:
                    current = await self._apply(current, move)

    async def _read(self) -> Rollout:
        deployment = await asyncio.to_thread(self._kubernetes.get, self.deployment.path)
        return Rollout.of(deployment, self.alias)

    async def _apply(self, current: Rollout, move: Move) -> Rollout:
        """Roll the Deployment out to `move.version`, unless it has it already."""
        for _ in range(_CONFLICT_RETRIES):
            if move.version is None:
                self._log(
                    f"{short_ref(self.alias)} was deleted (event {move.sequence}); deployment "
                    f"{self.deployment} keeps version {_shown(current.version)}"
                )
                return current
            if current.version == move.version or current.sequence >= move.sequence:
                self._log(
                    f"event {move.sequence}: deployment {self.deployment} is at version "
                    f"{_shown(current.version)} already; nothing to roll out"
                )
                return current
            try:
                patched = await asyncio.to_thread(
                    self._kubernetes.merge_patch, self.deployment.path, self._patch(current, move)
                )
            except KubernetesError as exc:
                if not exc.conflict:
                    raise
                current = await self._read()  # changed since we read it: decide again
                continue
            self._log(
                f"rolled out {short_ref(self.alias)} = version {move.version} to deployment "
                f"{self.deployment} (event {move.sequence})"
            )
            return Rollout.of(patched, self.alias)
        raise KubernetesError(
            f"deployment {self.deployment} kept changing under the controller "
            f"({_CONFLICT_RETRIES} conflicts in a row)",
            status=409,
        )

    def _patch(self, current: Rollout, move: Move) -> dict[str, Any]:
        return {
            "metadata": {
                "resourceVersion": current.resource_version,
                "annotations": {SEQUENCE_ANNOTATION: str(move.sequence), ALIAS_ANNOTATION: str(self.alias)},
            },
            "spec": {"template": {"metadata": {"annotations": {VERSION_ANNOTATION: str(move.version)}}}},
        }


def _shown(version: int | None) -> str:
    return "(none)" if version is None else str(version)
