"""The registry's use cases: every read and write of models, versions and aliases goes here.

This is the one place that stamps identity, time and etags on a change, so the governance work
(audit events, reviews, protected aliases) hooks in here and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from modelreg.names import AliasName, ModelName, ModelVersionName, NamespaceName, check_model_id
from modelreg_common import paging
from modelreg_common.context import current_actor
from modelreg_common.errors import InvalidArgument

from modelreg_metadata import domain
from modelreg_metadata.domain import Alias, Model, ModelFile, ModelVersion
from modelreg_metadata.store import AliasStore, ModelStore, VersionStore
from modelreg_metadata.store.mongo import new_etag, now

MAX_FILES_PER_BATCH = 1000


class Registry:
    def __init__(self, models: ModelStore, versions: VersionStore, aliases: AliasStore):
        self._models = models
        self._versions = versions
        self._aliases = aliases

    # Models

    async def create_model(self, parent: NamespaceName, model_id: str, draft: Model) -> Model:
        name = ModelName(parent.namespace, check_model_id(model_id))
        domain.check_text("model.display_name", draft.display_name, 256)
        domain.check_text("model.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        domain.check_text("model.model_card", draft.model_card, domain.MAX_MODEL_CARD_CHARS)
        domain.check_text("model.owner", draft.owner, 256)
        domain.check_string_map("model.labels", draft.labels)
        moment = now()
        model = replace(
            draft,
            name=name,
            uid=str(uuid.uuid4()),
            display_name=draft.display_name or model_id,
            create_time=moment,
            update_time=moment,
            etag=new_etag(),
            create_actor=current_actor(),
            latest_version_number=0,
            deleted=False,
        )
        return await self._models.insert_model(model)

    async def get_model(self, name: ModelName) -> Model:
        return await self._models.get_model(name)

    async def list_models(
        self, parent: NamespaceName, page_size: int, page_token: str
    ) -> tuple[list[Model], str]:
        limit = paging.page_size(page_size)
        query = f"models:{parent}"
        after = paging.decode_token(page_token, query)
        models = await self._models.list_models(parent.namespace, limit + 1, after[0] if after else None)
        next_token = paging.encode_token(query, [models[limit - 1].name.model]) if len(models) > limit else ""
        return models[:limit], next_token

    # Versions

    async def create_version(self, parent: ModelName, draft: ModelVersion) -> ModelVersion:
        domain.check_text("model_version.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        domain.check_string_map("model_version.tags", draft.tags)
        domain.check_metrics(draft.metrics)
        model = await self._models.get_model(parent)
        moment = now()
        version = replace(
            draft,
            name=parent.version(1),
            uid=str(uuid.uuid4()),
            model_uid=model.uid,
            files=[],
            manifest_digest=domain.manifest_digest([]),
            state=domain.VersionState.PENDING,
            create_actor=current_actor(),
            create_time=moment,
            update_time=moment,
            etag=new_etag(),
            aliases=[],
            deleted=False,
        )
        return await self._versions.insert_version(model, version)

    async def get_version(self, name: ModelVersionName) -> ModelVersion:
        return await self._versions.get_version(name)

    async def list_versions(
        self, parent: ModelName, page_size: int, page_token: str
    ) -> tuple[list[ModelVersion], str]:
        limit = paging.page_size(page_size)
        query = f"versions:{parent}"
        after = paging.decode_token(page_token, query)
        model = await self._models.get_model(parent)
        versions = await self._versions.list_versions(model, limit + 1, int(after[0]) if after else None)
        next_token = paging.encode_token(query, [versions[limit - 1].number]) if len(versions) > limit else ""
        return versions[:limit], next_token

    async def add_files(self, name: ModelVersionName, files: list[ModelFile]) -> ModelVersion:
        if not 1 <= len(files) <= MAX_FILES_PER_BATCH:
            raise InvalidArgument("files", f"must hold 1 to {MAX_FILES_PER_BATCH} files, got {len(files)}")
        moment = now()
        return await self._versions.add_files(name, [replace(file, create_time=moment) for file in files])

    async def seal_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        return await self._versions.seal(name, etag)

    # Aliases

    async def set_alias(self, name: AliasName, target: ModelVersionName, etag: str) -> Alias:
        if target.model_name != name.model_name:
            raise InvalidArgument(
                "model_version",
                f"{target} belongs to another model than alias {name}; an alias points within its model",
            )
        model = await self._models.get_model(name.model_name)
        await self._versions.get_version(target)  # NOT_FOUND before any alias changes
        alias = Alias(
            name=name, version_number=target.number, update_time=now(), update_actor=current_actor()
        )
        return await self._aliases.set_alias(model, alias, etag)

    async def get_version_by_alias(self, name: AliasName) -> ModelVersion:
        alias = await self._aliases.get_alias(name)
        return await self._versions.get_version(alias.model_version)
