"""Persistence of the registry's resources: one small interface per aggregate.

The one production implementation is MongoDB (`store.database`, and one module per aggregate:
`namespaces`, `models`, `versions`); `modelreg_metadata.memory` keeps the same rules in memory
for fast tests, and tests/contract holds every implementation to them. Stores take and return
domain objects and raise domain errors (duplicate key -> AlreadyExists, etag mismatch ->
Aborted). Updates take a `mutate` function holding the rule and return the resource before and
after the one write. Searches take a typed `Search` (search.py) and compile it themselves; the
event trail is searched with an `EventScope` (audit/events.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from modelreg_common.access.roles import Role

from modelreg_metadata.access_records import ApiToken, RoleBinding
from modelreg_metadata.audit.events import Event, EventScope
from modelreg_metadata.domain import Alias, AliasProtection, MetricPoint, Model, ModelVersion, Namespace
from modelreg_metadata.search import Page, Search

# Every write takes the event of its change, built from the resource before (None for a creation)
# and after (None for a deletion) inside the write, and commits the two together (audit/outbox.py).
EventFor = Callable[[Any, Any], Event]


class NamespaceStore(Protocol):
    async def insert_namespace(
        self, namespace: Namespace, request_key: str, event: EventFor
    ) -> Namespace: ...
    async def ensure_namespace(self, namespace: Namespace, event: EventFor) -> None: ...
    async def get_namespace(self, name: NamespaceName) -> Namespace: ...
    async def list_namespaces(self, limit: int, after: str | None) -> list[Namespace]: ...
    async def update_namespace(
        self,
        name: NamespaceName,
        mutate: Callable[[Namespace], Namespace],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Namespace, Namespace]: ...


class ModelStore(Protocol):
    async def insert_model(self, model: Model, request_key: str, event: EventFor) -> Model: ...
    async def get_model(self, name: ModelName, *, include_deleted: bool = False) -> Model: ...
    async def search_models(self, parent: NamespaceName, search: Search) -> Page[Model]: ...
    async def update_model(
        self,
        name: ModelName,
        mutate: Callable[[Model], Model],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[Model, Model]: ...
    async def get_alias(self, name: AliasName) -> Alias: ...
    async def list_aliases(self, model: ModelName) -> list[Alias]: ...
    async def change_alias(
        self,
        name: AliasName,
        change: Callable[[Alias | None, AliasProtection | None], Awaitable[Alias | None]],
        expected_etag: str,
        event: EventFor,
    ) -> tuple[Alias | None, Alias | None]: ...
    async def get_protection(self, name: AliasName) -> AliasProtection | None: ...
    async def change_protection(
        self,
        name: AliasName,
        change: Callable[[AliasProtection | None, Alias | None], AliasProtection | None],
        event: EventFor,
    ) -> tuple[AliasProtection | None, AliasProtection | None]: ...


class VersionStore(Protocol):
    async def insert_version(
        self,
        model: ModelName,
        version: Callable[[ModelVersionName], ModelVersion],
        request_key: str,
        event: EventFor,
    ) -> ModelVersion:
        """Stores a new version of `model` under its next free number; `version` makes it for the
        name that number gives. A create with a `request_key` ("" for none) that was made before
        gets the version it made."""
        ...

    async def get_version(self, name: ModelVersionName, *, include_deleted: bool = False) -> ModelVersion: ...
    async def get_version_by_alias(self, name: AliasName) -> ModelVersion: ...
    async def search_versions(self, parent: ModelName | NamespaceName, search: Search) -> Page[ModelVersion]:
        """The versions of a model, or of every model of a namespace; those of a deleted model are
        hidden (unless `show_deleted`), purged ones always."""
        ...

    async def update_version(
        self,
        name: ModelVersionName,
        mutate: Callable[[ModelVersion, dict[str, AliasProtection]], ModelVersion],
        expected_etag: str,
        event: EventFor,
        *,
        include_deleted: bool = False,
    ) -> tuple[ModelVersion, ModelVersion]: ...
    async def confirm_version(self, version: ModelVersion) -> None:
        """Make any write of `version` based on a read older than `version` fail (an alias move
        calls it for its target before writing the model: store/fences.py); ABORTED when the
        version has changed since. Nothing to do where one process orders all writes."""
        ...

    async def purge_version(
        self,
        name: ModelVersionName,
        check: Callable[[ModelVersion], None],
        expected_etag: str,
        event: EventFor,
    ) -> None:
        """Removes the version for good (`check` may refuse it), leaving a tombstone under its
        number; finishes a purge that was interrupted; NotFound once purged."""
        ...

    async def purgeable(self, deleted_before: datetime) -> list[ModelVersionName]:
        """Versions deleted before the time, and purged ones whose purge was interrupted."""
        ...

    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_key: str, event: EventFor
    ) -> tuple[ModelVersion, ModelVersion]: ...
    async def metric_history(
        self, name: ModelVersionName, metric: str, start: tuple[int, int], limit: int
    ) -> tuple[list[MetricPoint], tuple[int, int] | None]: ...


class EventLog(Protocol):
    async def get(self, sequence: int) -> Event | None: ...
    async def latest_sequence(self) -> int: ...
    async def settle(self) -> None: ...
    async def read_after(self, sequence: int, limit: int, *, probe: bool) -> list[Event]: ...
    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        """At most `limit` events in `scope` with after_sequence < sequence < before_sequence
        (0: no upper bound), in sequence order, or the reverse with `newest_first`: the first
        `limit` in that order."""
        ...

    def growth(self) -> asyncio.Event:
        """Set when this process places its next event (or stops): take it before reading."""
        ...

    @property
    def closed(self) -> bool:
        """True once the service is stopping."""
        ...


class RequestStore(Protocol):
    """The fingerprints of requests made with a request id (registry/idempotency.py)."""

    async def claim(self, request_key: str, fingerprint: str) -> str:
        """Records `fingerprint` under `request_key` unless one is recorded there already;
        returns the recorded one (the first writer's, when several race)."""
        ...


class BlobReferences(Protocol):
    async def referenced(self, digests: list[str]) -> list[str]:
        """The digests that some manifest (soft-deleted versions included) lists, in the given order."""
        ...


class AccessStore(Protocol):
    """API tokens and role bindings (store/access.py): both services read them, this one writes."""

    async def insert_token(self, token: ApiToken, secret_sha256: str) -> ApiToken: ...
    async def get_token(self, token_id: str) -> ApiToken: ...
    async def list_tokens(
        self, principal: str | None, *, active_at: datetime | None, limit: int, after: str | None
    ) -> list[ApiToken]: ...
    async def revoke_token(self, token_id: str) -> ApiToken: ...
    async def grant(self, binding: RoleBinding) -> RoleBinding: ...
    async def revoke(self, namespace: str, principal: str, role: Role) -> RoleBinding: ...
    async def advance_epoch(self) -> None: ...
    async def list_bindings(self, namespace: str, limit: int, after: str | None) -> list[RoleBinding]: ...
    async def bindings_of(self, subjects: list[str]) -> list[RoleBinding]: ...
