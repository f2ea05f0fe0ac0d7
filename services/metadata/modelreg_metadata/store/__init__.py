"""Persistence of the registry's resources: one small interface per aggregate.

The only implementation is MongoDB (`store.mongo`); stores take and return domain objects and
raise domain errors (duplicate key -> AlreadyExists, etag mismatch -> Aborted). Updates take a
`mutate` function holding the rule and return the resource before and after the one write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from modelreg.names import AliasName, ModelName, ModelVersionName, NamespaceName

from modelreg_metadata.domain import Alias, MetricPoint, Model, ModelVersion, Namespace

# A page of search results: each resource (None when hidden) with the values of its sort keys and
# its key.
Page = list[tuple[Any, list[Any], str]]
After = tuple[list[Any], str] | None
Sort = list[tuple[str, bool]]


class NamespaceStore(Protocol):
    async def insert_namespace(self, namespace: Namespace, request_key: str) -> Namespace: ...
    async def ensure_namespace(self, namespace: Namespace) -> None: ...
    async def get_namespace(self, name: NamespaceName) -> Namespace: ...
    async def list_namespaces(self, limit: int, after: str | None) -> list[Namespace]: ...
    async def update_namespace(
        self, name: NamespaceName, mutate: Callable[[Namespace], Namespace], expected_etag: str
    ) -> tuple[Namespace, Namespace]: ...


class ModelStore(Protocol):
    async def insert_model(self, model: Model, request_key: str) -> Model: ...
    async def get_model(self, name: ModelName, *, include_deleted: bool = False) -> Model: ...
    async def search_models(
        self,
        namespace: str,
        condition: dict[str, Any],
        sort: Sort,
        *,
        limit: int,
        after: After,
        show_deleted: bool,
    ) -> Page: ...
    async def update_model(
        self,
        name: ModelName,
        mutate: Callable[[Model], Model],
        expected_etag: str,
        *,
        include_deleted: bool = False,
    ) -> tuple[Model, Model]: ...
    async def get_alias(self, name: AliasName) -> Alias: ...
    async def list_aliases(self, model: ModelName) -> list[Alias]: ...
    async def change_alias(
        self, name: AliasName, change: Callable[[Alias | None], Alias | None], expected_etag: str
    ) -> tuple[Alias | None, Alias | None]: ...


class VersionStore(Protocol):
    async def insert_version(self, version: ModelVersion, request_key: str, client_key: bool) -> ModelVersion:
        """Stores `version` under the next free number of its model (the number in it is ignored)."""
        ...

    async def get_version(self, name: ModelVersionName, *, include_deleted: bool = False) -> ModelVersion: ...
    async def get_version_by_alias(self, name: AliasName) -> ModelVersion: ...
    async def search_versions(
        self,
        scope: dict[str, Any],
        condition: dict[str, Any],
        sort: Sort,
        *,
        limit: int,
        after: After,
        show_deleted: bool,
    ) -> Page: ...
    async def update_version(
        self,
        name: ModelVersionName,
        mutate: Callable[[ModelVersion], ModelVersion],
        expected_etag: str,
        *,
        include_deleted: bool = False,
    ) -> tuple[ModelVersion, ModelVersion]: ...
    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_key: str
    ) -> tuple[ModelVersion, ModelVersion]: ...
    async def metric_history(
        self, name: ModelVersionName, metric: str, start: tuple[int, int], limit: int
    ) -> tuple[list[MetricPoint], tuple[int, int] | None]: ...
