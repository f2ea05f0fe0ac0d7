"""Models: create (with their namespace, if it is new), read, search, update, delete and undelete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

from modelreg_api.errors import FailedPrecondition
from modelreg_api.names import ModelName, NamespaceName, check_model_id
from modelreg_common.context import current_actor

from modelreg_metadata import domain
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import Model
from modelreg_metadata.registry import idempotency
from modelreg_metadata.registry.field_masks import MODEL_MASK, copy_fields
from modelreg_metadata.registry.namespaces import new_namespace
from modelreg_metadata.registry.pages import next_token, page_search
from modelreg_metadata.search import MODEL_SCHEMA
from modelreg_metadata.store import ModelStore, NamespaceStore, RequestStore


class Models:
    def __init__(self, namespaces: NamespaceStore, models: ModelStore, requests: RequestStore):
        self._requests = requests
        self._namespaces = namespaces
        self._models = models

    def _check_model_fields(self, draft: Model) -> None:
        domain.check_text("model.display_name", draft.display_name, domain.MAX_TITLE_CHARS)
        domain.check_text("model.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        domain.check_text("model.model_card", draft.model_card, domain.MAX_MODEL_CARD_CHARS)
        domain.check_text("model.owner", draft.owner, domain.MAX_TITLE_CHARS)
        domain.check_string_map("model.labels", draft.labels)

    async def create_model(
        self, parent: NamespaceName, model_id: str, draft: Model, request_id: str = ""
    ) -> Model:
        name = ModelName(parent.namespace, check_model_id(model_id))
        self._check_model_fields(draft)
        request_key = idempotency.request_key("CreateModel", str(name), request_id) if request_id else ""
        await idempotency.claim(self._requests, request_key, idempotency.fingerprint(draft), request_id)
        # A namespace comes into being with its first model (its settings can be set later).
        await self._namespaces.ensure_namespace(
            new_namespace(parent), changes.event(Action.NAMESPACE_CREATED)
        )
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
        return await self._models.insert_model(model, request_key, changes.event(Action.MODEL_CREATED))

    async def get_model(self, name: ModelName) -> Model:
        return await self._models.get_model(name)

    async def list_models(
        self,
        parent: NamespaceName,
        *,
        page_size: int,
        page_token: str,
        filter_text: str = "",
        order_by: str = "",
        show_deleted: bool = False,
    ) -> tuple[list[Model], str]:
        query = f"models:{parent}:{filter_text}:{order_by}:{show_deleted}"
        search = page_search(
            MODEL_SCHEMA,
            page_size=page_size,
            page_token=page_token,
            query=query,
            filter_text=filter_text,
            order_by=order_by,
            show_deleted=show_deleted,
        )
        page = await self._models.search_models(parent, search)
        return page.items, next_token(query, page)

    async def update_model(self, draft: Model, requested: Sequence[str], populated: Sequence[str]) -> Model:
        paths = MODEL_MASK.paths("a model", requested, populated)
        self._check_model_fields(draft)

        def mutate(current: Model) -> Model:
            return replace(copy_fields(current, draft, paths), update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(
            draft.name, mutate, draft.etag, changes.event(Action.MODEL_UPDATED)
        )
        return after

    async def delete_model(self, name: ModelName, etag: str) -> Model:
        def mutate(current: Model) -> Model:
            return replace(current, deleted=True, update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(name, mutate, etag, changes.event(Action.MODEL_DELETED))
        return after

    async def undelete_model(self, name: ModelName) -> Model:
        def mutate(current: Model) -> Model:
            if not current.deleted:
                raise FailedPrecondition(f"model {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False, update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(
            name, mutate, "", changes.event(Action.MODEL_UNDELETED), include_deleted=True
        )
        return after
