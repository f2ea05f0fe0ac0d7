"""Persistence of the registry's resources: one small interface per aggregate.

The only implementation is MongoDB (`store.mongo`); stores take and return domain objects and
raise domain errors (duplicate key -> AlreadyExists, etag mismatch -> Aborted).
"""

from __future__ import annotations

from typing import Protocol

from modelreg.names import AliasName, ModelName, ModelVersionName

from modelreg_metadata.domain import Alias, Model, ModelFile, ModelVersion


class ModelStore(Protocol):
    async def insert_model(self, model: Model) -> Model: ...
    async def get_model(self, name: ModelName) -> Model: ...
    async def list_models(self, namespace: str, limit: int, after: str | None) -> list[Model]: ...


class VersionStore(Protocol):
    async def insert_version(self, model: Model, version: ModelVersion) -> ModelVersion:
        """Stores `version` under the next free number of `model` (the number in it is ignored)."""
        ...

    async def get_version(self, name: ModelVersionName) -> ModelVersion: ...
    async def list_versions(self, model: Model, limit: int, after: int | None) -> list[ModelVersion]: ...
    async def add_file(self, name: ModelVersionName, file: ModelFile) -> ModelVersion: ...


class AliasStore(Protocol):
    async def set_alias(self, model: Model, alias: Alias, expected_etag: str) -> Alias: ...
    async def get_alias(self, name: AliasName) -> Alias: ...
    async def aliases_by_version(self, model_uid: str) -> dict[int, list[str]]: ...
