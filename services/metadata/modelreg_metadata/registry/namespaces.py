"""Namespaces: create, read, list and update; `new_namespace` also serves a model's create, which
brings its namespace into being."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

from modelreg_api.names import NamespaceName, check_namespace_id
from modelreg_common import paging
from modelreg_common.context import current_actor

from modelreg_metadata import domain
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import Namespace
from modelreg_metadata.registry import idempotency
from modelreg_metadata.registry.field_masks import NAMESPACE_MASK, copy_fields
from modelreg_metadata.store import NamespaceStore, RequestStore


def new_namespace(name: NamespaceName, draft: Namespace | None = None) -> Namespace:
    moment = now()
    return Namespace(
        name=name,
        uid=str(uuid.uuid4()),
        display_name=(draft.display_name if draft else "") or name.namespace,
        description=draft.description if draft else "",
        labels=dict(draft.labels) if draft else {},
        allow_self_approval=draft.allow_self_approval if draft else False,
        create_time=moment,
        update_time=moment,
        etag=new_etag(),
        create_actor=current_actor(),
    )


class Namespaces:
    def __init__(self, namespaces: NamespaceStore, requests: RequestStore):
        self._requests = requests
        self._namespaces = namespaces

    def _check_namespace_fields(self, draft: Namespace) -> None:
        domain.check_text("namespace.display_name", draft.display_name, domain.MAX_TITLE_CHARS)
        domain.check_text("namespace.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        domain.check_string_map("namespace.labels", draft.labels)

    async def create_namespace(self, namespace_id: str, draft: Namespace, request_id: str) -> Namespace:
        name = NamespaceName(check_namespace_id(namespace_id, "namespace_id"))
        self._check_namespace_fields(draft)
        request_key = idempotency.request_key("CreateNamespace", str(name), request_id) if request_id else ""
        await idempotency.claim(self._requests, request_key, idempotency.fingerprint(draft), request_id)
        return await self._namespaces.insert_namespace(
            new_namespace(name, draft), request_key, changes.event(Action.NAMESPACE_CREATED)
        )

    async def get_namespace(self, name: NamespaceName) -> Namespace:
        return await self._namespaces.get_namespace(name)

    async def list_namespaces(self, page_size: int, page_token: str) -> tuple[list[Namespace], str]:
        limit = paging.page_size(page_size)
        after = paging.decode_token(page_token, "namespaces")
        found = await self._namespaces.list_namespaces(limit + 1, str(after[0]) if after else None)
        token = (
            paging.encode_token("namespaces", [found[limit - 1].name.namespace]) if len(found) > limit else ""
        )
        return found[:limit], token

    async def update_namespace(
        self, draft: Namespace, requested: Sequence[str], populated: Sequence[str]
    ) -> Namespace:
        paths = NAMESPACE_MASK.paths("a namespace", requested, populated)
        self._check_namespace_fields(draft)

        def mutate(current: Namespace) -> Namespace:
            return replace(copy_fields(current, draft, paths), update_time=now(), etag=new_etag())

        _, after = await self._namespaces.update_namespace(
            draft.name, mutate, draft.etag, changes.event(Action.NAMESPACE_UPDATED)
        )
        return after
