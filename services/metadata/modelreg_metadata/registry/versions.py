"""Model versions: create, read, search, update, the lifecycle (seal, archive, delete, purge) and
their files. Every write goes through `change_version`, which stamps the change (update time,
etag) and gives a rule the model's protected aliases under the model's lock; reviews use it too
(registry/reviews.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from modelreg_api.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from modelreg_common.context import current_actor

from modelreg_metadata import domain
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import (
    AliasProtection,
    ModelFile,
    ModelVersion,
    ReviewState,
    VersionDraft,
    VersionState,
)
from modelreg_metadata.registry import idempotency
from modelreg_metadata.registry.field_masks import VERSION_MASK, copy_fields
from modelreg_metadata.registry.pages import next_token, page_search
from modelreg_metadata.search import VERSION_SCHEMA
from modelreg_metadata.store import ModelStore, RequestStore, VersionStore

MAX_FILES_PER_BATCH = 1000  # files one BatchAddModelVersionFiles call may add


def _file_action(before: ModelVersion, after: ModelVersion) -> Action:
    """A manifest change that gives a stored path other content is a replacement."""
    digests = {f.path: f.sha256 for f in before.files}
    if any(digests.get(f.path, f.sha256) != f.sha256 for f in after.files):
        return Action.MODEL_VERSION_FILE_REPLACED
    return Action.MODEL_VERSION_FILE_ADDED


async def change_version(
    versions: VersionStore,
    action: Action | Callable[[ModelVersion, ModelVersion], Action],
    name: ModelVersionName,
    mutate: Callable[[ModelVersion], ModelVersion],
    etag: str = "",
    *,
    include_deleted: bool = False,
    protected: Callable[[ModelVersion, dict[str, AliasProtection]], None] | None = None,
) -> ModelVersion:
    """One version write; `protected` sees the model's protected aliases under its lock."""

    def stamped(current: ModelVersion, protections: dict[str, AliasProtection]) -> ModelVersion:
        if protected is not None:
            protected(current, protections)
        changed = mutate(current)
        if changed is current:
            return current
        return replace(changed, update_time=now(), etag=new_etag())

    _, after = await versions.update_version(
        name, stamped, etag, changes.event(action), include_deleted=include_deleted
    )
    return after


class Versions:
    def __init__(self, models: ModelStore, versions: VersionStore, requests: RequestStore):
        self._models = models
        self._requests = requests
        self._versions = versions

    def _check_version_fields(
        self, draft: ModelVersion | VersionDraft, paths: Sequence[str] | None = None
    ) -> None:
        check = set(paths) if paths is not None else None

        def wanted(path: str) -> bool:
            return check is None or path in check

        if wanted("description"):
            domain.check_text("model_version.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        if wanted("tags"):
            domain.check_string_map("model_version.tags", draft.tags)
        if wanted("metrics"):
            domain.check_metrics(draft.metrics)
        if wanted("params"):
            domain.check_params(draft.params, "model_version.params")
        if wanted("lineage"):
            domain.check_lineage(draft.lineage, "model_version.lineage")
        if wanted("signature"):
            domain.check_signature(draft.signature, "model_version.signature")

    async def create_version(
        self, parent: ModelName, draft: VersionDraft, request_id: str = ""
    ) -> ModelVersion:
        self._check_version_fields(draft)
        moment = now()
        uid = str(uuid.uuid4())
        actor = current_actor()
        etag = new_etag()
        empty_manifest = domain.manifest_digest([])
        model = await self._models.get_model(parent)
        request_key = (
            idempotency.request_key("CreateModelVersion", str(parent), request_id) if request_id else ""
        )
        await idempotency.claim(self._requests, request_key, idempotency.fingerprint(draft), request_id)

        def numbered(name: ModelVersionName) -> ModelVersion:
            """The new version under the number the store gives it."""
            return ModelVersion(
                name=name,
                uid=uid,
                model_uid=model.uid,
                description=draft.description,
                tags=draft.tags,
                params=draft.params,
                metrics=draft.metrics,
                lineage=draft.lineage,
                signature=draft.signature,
                manifest_digest=empty_manifest,
                state=VersionState.PENDING,
                create_actor=actor,
                create_time=moment,
                update_time=moment,
                etag=etag,
                review_state=ReviewState.NOT_SUBMITTED,
            )

        return await self._versions.insert_version(
            parent, numbered, request_key, changes.event(Action.MODEL_VERSION_CREATED)
        )

    async def get_version(self, name: ModelVersionName) -> ModelVersion:
        return await self._versions.get_version(name)

    async def list_versions(
        self,
        parent: ModelName | NamespaceName,
        *,
        page_size: int,
        page_token: str,
        filter_text: str = "",
        order_by: str = "",
        show_deleted: bool = False,
    ) -> tuple[list[ModelVersion], str]:
        if isinstance(parent, ModelName):
            await self._models.get_model(parent)
            default_order = order_by
            label = str(parent)
        else:
            default_order = order_by or "model_id, number"
            label = f"{parent}/models/-"
        query = f"versions:{label}:{filter_text}:{order_by}:{show_deleted}"
        search = page_search(
            VERSION_SCHEMA,
            page_size=page_size,
            page_token=page_token,
            query=query,
            filter_text=filter_text,
            order_by=default_order,
            show_deleted=show_deleted,
        )
        page = await self._versions.search_versions(parent, search)
        return page.items, next_token(query, page)

    async def get_version_by_alias(self, name: AliasName) -> ModelVersion:
        return await self._versions.get_version_by_alias(name)

    async def update_version(
        self, draft: ModelVersion, requested: Sequence[str], populated: Sequence[str]
    ) -> ModelVersion:
        paths = VERSION_MASK.paths("a model version", requested, populated)
        self._check_version_fields(draft, paths)
        frozen = [p for p in paths if p in VERSION_MASK.frozen_when_sealed]

        def mutate(current: ModelVersion) -> ModelVersion:
            if frozen and current.state is not VersionState.PENDING:
                raise FailedPrecondition(
                    f"model version {current.name} is {current.state.value}: its {', '.join(frozen)} "
                    "cannot change after it was sealed",
                    reason="VERSION_SEALED",
                )
            return copy_fields(current, draft, paths)

        return await change_version(
            self._versions, Action.MODEL_VERSION_UPDATED, draft.name, mutate, draft.etag
        )

    async def delete_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.aliases:
                raise FailedPrecondition(
                    f"model version {name} is the target of alias(es) {', '.join(current.aliases)}; "
                    "move or delete them first",
                    reason="VERSION_HAS_ALIASES",
                )
            return replace(current, deleted=True)

        return await change_version(self._versions, Action.MODEL_VERSION_DELETED, name, mutate, etag)

    async def undelete_version(self, name: ModelVersionName) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if not current.deleted:
                raise FailedPrecondition(f"model version {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False)

        return await change_version(
            self._versions, Action.MODEL_VERSION_UNDELETED, name, mutate, include_deleted=True
        )

    async def purge_version(self, name: ModelVersionName, etag: str) -> None:
        """Removes a soft-deleted version for good (its number stays taken; see the store)."""

        def check(current: ModelVersion) -> None:
            if not current.deleted:
                raise FailedPrecondition(
                    f"model version {name} is not deleted; delete it first (DeleteModelVersion), "
                    "then purge it",
                    reason="NOT_DELETED",
                )
            # Cannot happen today: deleting a version with aliases is refused, and an alias never
            # moves to a deleted version. Checked under the model's lock all the same, because an
            # alias left pointing at a purged version would point at nothing.
            if current.aliases:
                raise FailedPrecondition(
                    f"model version {name} is the target of alias(es) {', '.join(current.aliases)}; "
                    "move or delete them first",
                    reason="VERSION_HAS_ALIASES",
                )

        await self._versions.purge_version(name, check, etag, changes.purge_event)

    async def purge_deleted_before(self, moment: datetime, stopping: asyncio.Event) -> int:
        """Purges every version deleted before `moment` (and finishes interrupted purges), one at
        a time until done or `stopping` is set; returns how many it purged."""
        purged = 0
        for name in await self._versions.purgeable(moment):
            if stopping.is_set():
                break
            try:
                await self.purge_version(name, "")
            except (NotFound, FailedPrecondition, Aborted):
                continue  # undeleted, purged or changed meanwhile, or its model is deleted
            purged += 1
        return purged

    async def archive_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.state is VersionState.ARCHIVED:
                return current
            if current.state is not VersionState.READY:
                raise FailedPrecondition(
                    f"model version {name} is {current.state.value}; "
                    "only a READY (sealed) version can be archived",
                    reason="VERSION_NOT_READY",
                )
            return replace(current, state=VersionState.ARCHIVED)

        def serving_protected(current: ModelVersion, protections: dict[str, AliasProtection]) -> None:
            serving = sorted(a for a in current.aliases if a in protections)
            if serving and current.state is not VersionState.ARCHIVED:
                raise FailedPrecondition(
                    f"model version {name} is the target of protected alias(es) {', '.join(serving)}; "
                    "move them to another version before archiving it",
                    reason="VERSION_SERVES_PROTECTED_ALIAS",
                    metadata={"aliases": ",".join(serving)},
                )

        return await change_version(
            self._versions, Action.MODEL_VERSION_ARCHIVED, name, mutate, etag, protected=serving_protected
        )

    async def unarchive_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.state is VersionState.READY:
                return current
            if current.state is not VersionState.ARCHIVED:
                raise FailedPrecondition(
                    f"model version {name} is {current.state.value}, not ARCHIVED",
                    reason="VERSION_NOT_ARCHIVED",
                )
            return replace(current, state=VersionState.READY)

        return await change_version(self._versions, Action.MODEL_VERSION_UNARCHIVED, name, mutate, etag)

    async def add_files(
        self, name: ModelVersionName, files: list[ModelFile], *, replace_existing: bool = False
    ) -> ModelVersion:
        """Add verified files to a PENDING version's manifest as one change (one event), in order,
        under the manifest's rules (modelreg_api.manifests): the same content again is a no-op;
        other content at a stored path is refused unless `replace_existing` (and is then a
        MODEL_VERSION_FILE_REPLACED event); a path that cannot live beside another in one
        directory tree is refused.

        The rules run inside the store's write (under the version's lock and compare-and-set), so
        two concurrent adds of `dir` and `dir/file` cannot both land: the second sees the first."""
        if not 1 <= len(files) <= MAX_FILES_PER_BATCH:
            raise InvalidArgument("files", f"must hold 1 to {MAX_FILES_PER_BATCH} files, got {len(files)}")
        moment = now()
        for file in files:
            domain.check_text("file.content_type", file.content_type, domain.MAX_CONTENT_TYPE_CHARS)
        stamped = [replace(file, create_time=moment) for file in files]

        def mutate(current: ModelVersion) -> ModelVersion:
            if current.state is not VersionState.PENDING:
                raise FailedPrecondition(
                    f"model version {name} is {current.state.value}; files can be added only while PENDING",
                    reason="VERSION_SEALED",
                )
            files = domain.added_to_manifest(current, stamped, replace_existing=replace_existing)
            if files is None:
                return current  # the same content again: nothing changes
            domain.check_manifest_room(files, name)
            return replace(current, files=files, manifest_digest=domain.manifest_digest(files))

        return await change_version(self._versions, _file_action, name, mutate)

    async def seal_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.state is VersionState.READY:
                return current
            if current.state is not VersionState.PENDING:
                raise FailedPrecondition(
                    f"model version {name} is {current.state.value}; only a PENDING version can be sealed",
                    reason="VERSION_NOT_PENDING",
                )
            # Under the version's lock and compare-and-set: a file added concurrently either
            # lands before the seal (and is part of the sealed manifest) or is refused after it.
            return replace(current, state=VersionState.READY)

        return await change_version(self._versions, Action.MODEL_VERSION_SEALED, name, mutate, etag)
