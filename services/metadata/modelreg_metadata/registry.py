"""The registry's use cases: every read and write of namespaces, models, versions, aliases and
metrics goes through here.

This is the one place that stamps identity, time and etags on a change, and each change is a
single-document write in the store that hands back the resource before and after it. Every write
also takes the audit event of its change (`_event`): the store builds it from the resource before
and after, inside the write, and commits both together (store/outbox.py). Governance rules
(reviews, protected aliases) are in governance.py; this module applies them inside the writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import structlog
from modelreg.names import (
    AliasName,
    ModelName,
    ModelVersionName,
    NamespaceName,
    check_model_id,
    check_namespace_id,
)
from modelreg_common import paging
from modelreg_common.context import current_actor
from modelreg_common.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, Unavailable

from modelreg_metadata import audit, domain, governance
from modelreg_metadata.audit import Action, Event
from modelreg_metadata.domain import (
    Alias,
    AliasProtection,
    ComparedRow,
    MetricPoint,
    Model,
    ModelFile,
    ModelVersion,
    Namespace,
    Review,
    ReviewDecision,
    ReviewState,
    VersionState,
)
from modelreg_metadata.filtering import Path, parse_filter, parse_order_by
from modelreg_metadata.store import EventFor, EventLog, ModelStore, NamespaceStore, Page, VersionStore
from modelreg_metadata.store.database import new_etag, now
from modelreg_metadata.store.events import list_condition
from modelreg_metadata.store.query import (
    MODEL_SCHEMA,
    VERSION_SCHEMA,
    FilterCompiler,
    Schema,
    decode_sort_value,
    encode_sort_value,
    sort_paths,
)

log = structlog.get_logger("modelreg.metadata.changes")

T = TypeVar("T")

MAX_FILES_PER_BATCH = 1000  # files one BatchAddModelVersionFiles call may add
MAX_COMPARED_VERSIONS = 100
DEFAULT_HISTORY_PAGE = 1000
MAX_HISTORY_PAGE = 10_000
WATCH_POLL_SECONDS = 0.15  # how long a watcher waits for this process's relay before re-reading
WATCH_BATCH = 256
MAX_RESOURCE_CHARS = 512


@dataclass(frozen=True)
class Mask:
    """Which fields of a resource an update may name, and how each is guarded."""

    updatable: frozenset[str]
    output_only: frozenset[str]
    immutable: frozenset[str] = frozenset()
    frozen_when_sealed: frozenset[str] = frozenset()

    def paths(self, resource: str, requested: Sequence[str], populated: Sequence[str]) -> list[str]:
        """The fields to update. An empty mask means every updatable field set in the request."""
        if not requested:
            return [p for p in populated if p in self.updatable]
        if list(requested) == ["*"]:
            return sorted(self.updatable)
        for path in requested:
            if path in self.output_only:
                raise InvalidArgument(
                    "update_mask",
                    f"`{path}` is output only; it cannot be updated",
                    reason="FIELD_OUTPUT_ONLY",
                )
            if path in self.immutable:
                raise InvalidArgument(
                    "update_mask", f"`{path}` is immutable; it cannot be updated", reason="FIELD_IMMUTABLE"
                )
            if path not in self.updatable:
                raise InvalidArgument(
                    "update_mask",
                    f"`{path}` is not a field of {resource} that can be updated; "
                    f"updatable: {', '.join(sorted(self.updatable))}",
                    reason="FIELD_NOT_UPDATABLE",
                )
        return list(dict.fromkeys(requested))


NAMESPACE_MASK = Mask(
    updatable=frozenset({"display_name", "description", "labels", "allow_self_approval"}),
    output_only=frozenset({"uid", "create_time", "update_time", "etag", "create_actor"}),
    immutable=frozenset({"name"}),
)
MODEL_MASK = Mask(
    updatable=frozenset({"display_name", "description", "model_card", "owner", "labels"}),
    output_only=frozenset(
        {"uid", "create_time", "update_time", "etag", "create_actor", "latest_version_number", "deleted"}
    ),
    immutable=frozenset({"name"}),
)
VERSION_MASK = Mask(
    updatable=frozenset({"description", "tags", "metrics", "params", "lineage", "signature"}),
    output_only=frozenset(
        {
            "uid",
            "number",
            "files",
            "manifest_digest",
            "state",
            "create_actor",
            "create_time",
            "update_time",
            "etag",
            "aliases",
            "deleted",
            "review_state",
            "reviews",
        }
    ),
    immutable=frozenset({"name"}),
    frozen_when_sealed=frozenset({"params", "lineage", "signature"}),
)


def _copy(target: T, source: Any, paths: Sequence[str]) -> T:
    return replace(target, **{path: getattr(source, path) for path in paths})  # type: ignore[type-var]


def _event(action: Action | Callable[[Any, Any], Action]) -> EventFor:
    """The event maker of one write: `action` may depend on the resource before and after."""

    def make(before: Any, after: Any) -> Event:
        chosen = action(before, after) if callable(action) else action
        resource = (after if after is not None else before).name
        event = audit.new_event(chosen, resource, before, after, now())
        log.debug("change", action=event.action, resource=event.resource, fields=sorted(event.after))
        return event

    return make


def _purge_event(before: ModelVersion, after: None) -> Event:
    event = audit.purge_event(before.name, now())
    log.debug("change", action=event.action, resource=event.resource, fields=sorted(event.after))
    return event


def _alias_action(before: Alias | None, after: Alias | None) -> Action:
    if after is None:
        return Action.ALIAS_DELETED
    return Action.ALIAS_CREATED if before is None else Action.ALIAS_MOVED


def _request_key(kind: str, scope: str, request_id: str) -> str:
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument("request_id", "must be at most 128 printable characters")
    return f"{kind} {scope} {request_id}"


class Registry:
    def __init__(self, namespaces: NamespaceStore, models: ModelStore, versions: VersionStore):
        self._namespaces = namespaces
        self._models = models
        self._versions = versions

    # Paging helpers

    def _page_query(
        self,
        schema: Schema,
        *,
        page_size: int,
        page_token: str,
        query: str,
        filter_text: str,
        order_by: str,
    ) -> tuple[int, dict[str, Any], list[tuple[str, bool]], tuple[list[Any], str] | None]:
        limit = paging.page_size(page_size)
        condition = FilterCompiler(schema).compile(parse_filter(filter_text))
        sort = sort_paths(schema, parse_order_by(order_by))
        after = None
        key = paging.decode_token(page_token, query)
        if key is not None:
            if len(key) != len(sort) + 1 or not isinstance(key[-1], str):
                raise InvalidArgument("page_token", "is not a token returned by this method")
            after = ([decode_sort_value(v) for v in key[:-1]], key[-1])
        return limit, condition, sort, after

    @staticmethod
    def _next_token(query: str, rows: Page, limit: int) -> str:
        if len(rows) <= limit:
            return ""
        _, values, last_id = rows[limit - 1]
        return paging.encode_token(query, [*(encode_sort_value(v) for v in values), last_id])

    # Namespaces

    def _check_namespace_fields(self, draft: Namespace) -> None:
        domain.check_text("namespace.display_name", draft.display_name, domain.MAX_TITLE_CHARS)
        domain.check_text("namespace.description", draft.description, domain.MAX_DESCRIPTION_CHARS)
        domain.check_string_map("namespace.labels", draft.labels)

    def _new_namespace(self, name: NamespaceName, draft: Namespace | None = None) -> Namespace:
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

    async def create_namespace(self, namespace_id: str, draft: Namespace, request_id: str) -> Namespace:
        name = NamespaceName(check_namespace_id(namespace_id, "namespace_id"))
        self._check_namespace_fields(draft)
        request_key = _request_key("CreateNamespace", str(name), request_id) if request_id else ""
        return await self._namespaces.insert_namespace(
            self._new_namespace(name, draft), request_key, _event(Action.NAMESPACE_CREATED)
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
            return replace(_copy(current, draft, paths), update_time=now(), etag=new_etag())

        _, after = await self._namespaces.update_namespace(
            draft.name, mutate, draft.etag, _event(Action.NAMESPACE_UPDATED)
        )
        return after

    # Models

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
        request_key = _request_key("CreateModel", str(name), request_id) if request_id else ""
        # A namespace comes into being with its first model (its settings can be set later).
        await self._namespaces.ensure_namespace(self._new_namespace(parent), _event(Action.NAMESPACE_CREATED))
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
        return await self._models.insert_model(model, request_key, _event(Action.MODEL_CREATED))

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
        limit, condition, sort, after = self._page_query(
            MODEL_SCHEMA,
            page_size=page_size,
            page_token=page_token,
            query=query,
            filter_text=filter_text,
            order_by=order_by,
        )
        rows = await self._models.search_models(
            parent.namespace, condition, sort, limit=limit + 1, after=after, show_deleted=show_deleted
        )
        return [model for model, _, _ in rows[:limit]], self._next_token(query, rows, limit)

    async def update_model(self, draft: Model, requested: Sequence[str], populated: Sequence[str]) -> Model:
        paths = MODEL_MASK.paths("a model", requested, populated)
        self._check_model_fields(draft)

        def mutate(current: Model) -> Model:
            return replace(_copy(current, draft, paths), update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(
            draft.name, mutate, draft.etag, _event(Action.MODEL_UPDATED)
        )
        return after

    async def delete_model(self, name: ModelName, etag: str) -> Model:
        def mutate(current: Model) -> Model:
            return replace(current, deleted=True, update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(name, mutate, etag, _event(Action.MODEL_DELETED))
        return after

    async def undelete_model(self, name: ModelName) -> Model:
        def mutate(current: Model) -> Model:
            if not current.deleted:
                raise FailedPrecondition(f"model {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False, update_time=now(), etag=new_etag())

        _, after = await self._models.update_model(
            name, mutate, "", _event(Action.MODEL_UNDELETED), include_deleted=True
        )
        return after

    # Versions

    def _check_version_fields(self, draft: ModelVersion, paths: Sequence[str] | None = None) -> None:
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
        self, parent: ModelName, draft: ModelVersion, request_id: str = ""
    ) -> ModelVersion:
        self._check_version_fields(draft)
        moment = now()
        version = replace(
            draft,
            name=parent.version(1),
            uid=str(uuid.uuid4()),
            model_uid="",
            files=[],
            manifest_digest=domain.manifest_digest([]),
            state=VersionState.PENDING,
            create_actor=current_actor(),
            create_time=moment,
            update_time=moment,
            etag=new_etag(),
            aliases=[],
            deleted=False,
            review_state=ReviewState.NOT_SUBMITTED,
            reviews=[],
        )
        model = await self._models.get_model(parent)
        version = replace(version, model_uid=model.uid)
        if request_id:
            request_key, client_key = _request_key("CreateModelVersion", str(parent), request_id), True
        else:
            request_key, client_key = f"auto {version.uid}", False  # unique and never null
        return await self._versions.insert_version(
            version, request_key, client_key, _event(Action.MODEL_VERSION_CREATED)
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
            scope: dict[str, Any] = {"namespace": parent.namespace, "model_id": parent.model}
            default_order = order_by
            label = str(parent)
        else:
            scope = {"namespace": parent.namespace}
            default_order = order_by or "model_id, number"
            label = f"{parent}/models/-"
        query = f"versions:{label}:{filter_text}:{order_by}:{show_deleted}"
        limit, condition, sort, after = self._page_query(
            VERSION_SCHEMA,
            page_size=page_size,
            page_token=page_token,
            query=query,
            filter_text=filter_text,
            order_by=default_order,
        )
        rows = await self._versions.search_versions(
            scope, condition, sort, limit=limit + 1, after=after, show_deleted=show_deleted
        )
        shown = [version for version, _, _ in rows[:limit] if version is not None]
        return shown, self._next_token(query, rows, limit)

    async def _update_version(
        self,
        action: Action,
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

        _, after = await self._versions.update_version(
            name, stamped, etag, _event(action), include_deleted=include_deleted
        )
        return after

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
            return _copy(current, draft, paths)

        return await self._update_version(Action.MODEL_VERSION_UPDATED, draft.name, mutate, draft.etag)

    async def delete_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.aliases:
                raise FailedPrecondition(
                    f"model version {name} is the target of alias(es) {', '.join(current.aliases)}; "
                    "move or delete them first",
                    reason="VERSION_HAS_ALIASES",
                )
            return replace(current, deleted=True)

        return await self._update_version(Action.MODEL_VERSION_DELETED, name, mutate, etag)

    async def undelete_version(self, name: ModelVersionName) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if not current.deleted:
                raise FailedPrecondition(f"model version {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False)

        return await self._update_version(Action.MODEL_VERSION_UNDELETED, name, mutate, include_deleted=True)

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

        await self._versions.purge_version(name, check, etag, _purge_event)

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

        return await self._update_version(
            Action.MODEL_VERSION_ARCHIVED, name, mutate, etag, protected=serving_protected
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

        return await self._update_version(Action.MODEL_VERSION_UNARCHIVED, name, mutate, etag)

    async def add_files(self, name: ModelVersionName, files: list[ModelFile]) -> ModelVersion:
        """Add verified files to a PENDING version's manifest as one change (one event), in order:
        a later file replaces an earlier one at the same path; the same content again is a no-op."""
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
            manifest = {f.path: f for f in current.files}
            changed = False
            for file in stamped:
                present = manifest.get(file.path)
                if present and (present.sha256, present.size_bytes) == (file.sha256, file.size_bytes):
                    continue  # the same content again: nothing changes
                manifest[file.path] = file
                changed = True
            if not changed:
                return current
            ordered = sorted(manifest.values(), key=lambda f: f.path)
            domain.check_manifest_room(ordered, name)
            return replace(current, files=ordered, manifest_digest=domain.manifest_digest(ordered))

        return await self._update_version(Action.MODEL_VERSION_FILE_ADDED, name, mutate)

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

        return await self._update_version(Action.MODEL_VERSION_SEALED, name, mutate, etag)

    # Aliases

    async def set_alias(self, name: AliasName, target: ModelVersionName, etag: str) -> Alias:
        if target.model_name != name.model_name:
            raise InvalidArgument(
                "model_version",
                f"{target} belongs to another model than alias {name}; an alias points within its model",
            )
        await self._versions.get_version(target)  # NOT_FOUND before any alias changes

        async def change(current: Alias | None, protection: AliasProtection | None) -> Alias:
            # Under the model's lock: the versions read here cannot change until the move is
            # written (their updates take the model's lock too).
            version = await self._versions.get_version(target)
            if version.state is VersionState.ARCHIVED:
                raise FailedPrecondition(
                    f"model version {target} is ARCHIVED; unarchive it before pointing an alias at it",
                    reason="VERSION_ARCHIVED",
                )
            if protection is not None:
                serving = None
                if current is not None:
                    try:
                        serving = await self._versions.get_version(
                            current.model_version, include_deleted=True
                        )
                    except NotFound:
                        serving = None
                governance.admit(name, protection, version, serving)
            return Alias(
                name=name,
                version_number=target.number,
                update_time=now(),
                update_actor=current_actor(),
                etag=new_etag(),
                protection=protection,
            )

        _, after = await self._models.change_alias(name, change, etag, _event(_alias_action))
        if after is None:  # `change` always returns an alias; this keeps the type honest
            raise NotFound(f"alias {name} not found")
        return after

    async def get_alias(self, name: AliasName) -> Alias:
        return await self._models.get_alias(name)

    async def list_aliases(
        self, parent: ModelName, page_size: int, page_token: str
    ) -> tuple[list[Alias], str]:
        limit = paging.page_size(page_size)
        query = f"aliases:{parent}"
        after = paging.decode_token(page_token, query)
        aliases = await self._models.list_aliases(parent)
        if after:
            aliases = [a for a in aliases if a.name.alias > str(after[0])]
        token = paging.encode_token(query, [aliases[limit - 1].name.alias]) if len(aliases) > limit else ""
        return aliases[:limit], token

    async def delete_alias(self, name: AliasName, etag: str) -> None:
        async def change(current: Alias | None, protection: AliasProtection | None) -> None:
            if current is None:
                raise NotFound(f"alias {name} not found")
            if protection is not None:
                raise FailedPrecondition(
                    f"alias {name} is protected; UnprotectAlias first to delete it",
                    reason="ALIAS_PROTECTED",
                    metadata={"alias": str(name)},
                )

        await self._models.change_alias(name, change, etag, _event(_alias_action))

    # Protected aliases

    async def protect_alias(self, protection: AliasProtection) -> AliasProtection:
        governance.check_protection(protection)
        actor = current_actor()

        def change(current: AliasProtection | None, alias: Alias | None) -> AliasProtection:
            return replace(protection, update_time=now(), update_actor=actor)

        _, after = await self._models.change_protection(
            protection.name, change, _event(Action.ALIAS_PROTECTED)
        )
        if after is None:  # `change` always returns a protection; this keeps the type honest
            raise NotFound(f"alias {protection.name} is not protected")
        return after

    async def get_alias_protection(self, name: AliasName) -> AliasProtection:
        protection = await self._models.get_protection(name)
        if protection is None:
            raise NotFound(f"alias {name} is not protected")
        return protection

    async def unprotect_alias(self, name: AliasName) -> None:
        def change(current: AliasProtection | None, alias: Alias | None) -> None:
            if current is None:
                raise NotFound(f"alias {name} is not protected")

        await self._models.change_protection(name, change, _event(Action.ALIAS_UNPROTECTED))

    # Reviews

    async def submit_for_review(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_submittable(current)
            step = Review(ReviewDecision.SUBMITTED, actor, now(), comment)
            return replace(current, review_state=ReviewState.PENDING, reviews=[*current.reviews, step])

        return await self._update_version(Action.MODEL_VERSION_REVIEW_SUBMITTED, name, mutate, etag)

    async def approve_version(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()
        try:
            namespace = await self._namespaces.get_namespace(NamespaceName(name.namespace))
        except NotFound:  # created before namespaces were stored: the defaults apply
            namespace = Namespace(name=NamespaceName(name.namespace), uid="")

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_approvable(current, namespace, actor)
            step = Review(ReviewDecision.APPROVED, actor, now(), comment)
            return replace(current, review_state=ReviewState.APPROVED, reviews=[*current.reviews, step])

        return await self._update_version(Action.MODEL_VERSION_APPROVED, name, mutate, etag)

    async def reject_version(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_decidable(current)
            step = Review(ReviewDecision.REJECTED, actor, now(), comment)
            return replace(current, review_state=ReviewState.REJECTED, reviews=[*current.reviews, step])

        return await self._update_version(Action.MODEL_VERSION_REJECTED, name, mutate, etag)

    async def get_version_by_alias(self, name: AliasName) -> ModelVersion:
        return await self._versions.get_version_by_alias(name)

    # Metrics

    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_id: str
    ) -> ModelVersion:
        domain.check_metric_points(points)
        received = now()
        stamped = [p if p.time else replace(p, time=received) for p in points]
        request_key = _request_key("LogMetrics", str(name), request_id) if request_id else ""
        await self._models.get_model(name.model_name)
        summary_keys = {p.key for p in stamped}
        current = await self._versions.get_version(name)
        if len(set(current.metrics) | summary_keys) > domain.MAX_METRICS:
            raise InvalidArgument("points", f"a version holds at most {domain.MAX_METRICS} distinct metrics")
        _, after = await self._versions.log_metrics(
            name, stamped, request_key, _event(Action.MODEL_VERSION_METRICS_LOGGED)
        )
        return after

    async def list_metric_history(
        self, name: ModelVersionName, metric_key: str, page_size: int, page_token: str
    ) -> tuple[list[MetricPoint], str]:
        domain.check_key("metric_key", metric_key)
        if page_size < 0:
            raise InvalidArgument("page_size", f"must not be negative, got {page_size}")
        limit = min(page_size or DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE)
        query = f"history:{name}:{metric_key}"
        key = paging.decode_token(page_token, query)
        start = (0, 0)
        if key is not None:
            if len(key) != 2 or not all(isinstance(k, int) and k >= 0 for k in key):
                raise InvalidArgument("page_token", "is not a token returned by this method")
            start = (key[0], key[1])
        await self._models.get_model(name.model_name)
        points, following = await self._versions.metric_history(name, metric_key, start, limit)
        return points, paging.encode_token(query, list(following)) if following else ""

    # Compare

    async def compare_versions(
        self, names: list[ModelVersionName]
    ) -> tuple[list[ModelVersion], list[ComparedRow], list[ComparedRow]]:
        if len(names) < 2 or len(names) > MAX_COMPARED_VERSIONS:
            raise InvalidArgument("names", f"compare 2 to {MAX_COMPARED_VERSIONS} versions, got {len(names)}")
        if len(set(names)) != len(names):
            raise InvalidArgument("names", "lists a version more than once")
        versions = list(await asyncio.gather(*(self._versions.get_version(n) for n in names)))

        def rows(columns: list[dict[str, Any]]) -> list[ComparedRow]:
            keys = sorted(set().union(*columns))
            out = []
            for key in keys:
                values = [column.get(key) for column in columns]
                differs = any(v != values[0] or v is None for v in values)
                out.append(ComparedRow(key=key, values=values, differs=differs))
            return out

        metrics = rows([dict(v.metrics) for v in versions])
        params = rows(
            [
                {str(Path(path)): value for path, value in domain.flatten_params(v.params).items()}
                for v in versions
            ]
        )
        return versions, metrics, params


@dataclass(frozen=True)
class EventScope:
    """Which events a list or a watch wants (every field optional)."""

    namespace: str = ""
    model_id: str = ""
    resource: str = ""
    actions: tuple[str, ...] = ()
    actor: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        namespace: NamespaceName | None = None,
        model: ModelName | None = None,
        resource: str = "",
        actions: Sequence[str] = (),
        actor: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> EventScope:
        if model is not None and namespace is not None and model.namespace != namespace.namespace:
            raise InvalidArgument("model", f"{model} is not in {namespace}")
        known = {a.value for a in Action}
        for i, action in enumerate(actions):
            if action not in known:
                raise InvalidArgument(
                    f"actions[{i}]", f"unknown action {action!r}; one of {', '.join(sorted(known))}"
                )
        domain.check_text("resource", resource, MAX_RESOURCE_CHARS)
        domain.check_text("actor", actor, domain.MAX_TITLE_CHARS)
        if start_time is not None and end_time is not None and end_time <= start_time:
            raise InvalidArgument("end_time", "must be after start_time")
        return cls(
            namespace=model.namespace if model else namespace.namespace if namespace else "",
            model_id=model.model if model else "",
            resource=resource,
            actions=tuple(dict.fromkeys(actions)),
            actor=actor,
            start_time=start_time,
            end_time=end_time,
        )

    def condition(self) -> dict[str, Any]:
        return list_condition(
            namespace=self.namespace,
            model_id=self.model_id,
            resource=self.resource,
            actions=list(self.actions),
            actor=self.actor,
            start_time=self.start_time,
            end_time=self.end_time,
        )

    def matches(self, event: Event) -> bool:
        parts = event.resource.split("/")
        namespace = parts[1] if len(parts) > 1 else ""
        model_id = parts[3] if len(parts) > 3 else ""
        return (
            (not self.namespace or namespace == self.namespace)
            and (not self.model_id or model_id == self.model_id)
            and (not self.resource or event.resource == self.resource)
            and (not self.actions or event.action in self.actions)
            and (not self.actor or event.actor == self.actor)
            and (self.start_time is None or event.time >= self.start_time)
            and (self.end_time is None or event.time < self.end_time)
        )


class AuditTrail:
    """Reading the event trail: list, watch, and the state of a resource at a point in time."""

    def __init__(self, events: EventLog):
        self._events = events

    async def list_events(
        self, scope: EventScope, *, after_sequence: int, page_size: int, page_token: str
    ) -> tuple[list[Event], str]:
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        limit = paging.page_size(page_size)
        query = f"events:{scope!r}:{after_sequence}"
        key = paging.decode_token(page_token, query)
        if key is not None:
            if len(key) != 1 or not isinstance(key[0], int):
                raise InvalidArgument("page_token", "is not a token returned by this method")
            after_sequence = max(after_sequence, key[0])
        await self._events.settle()
        found = await self._events.search(scope.condition(), after_sequence, limit + 1)
        token = paging.encode_token(query, [found[limit - 1].sequence]) if len(found) > limit else ""
        return found[:limit], token

    async def watch_start(self, *, after_sequence: int, from_now: bool) -> int:
        """The sequence number a watch starts after: the given one, or the latest for `from_now`."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        if not from_now:
            return after_sequence
        await self._events.settle()
        return await self._events.latest_sequence()

    async def watch_events(
        self, scope: EventScope, *, after_sequence: int, from_now: bool
    ) -> AsyncIterator[Event]:
        """Every event after the cursor, in order and without gaps, until the caller goes away."""
        cursor = await self.watch_start(after_sequence=after_sequence, from_now=from_now)
        probe = True  # also look in the database for events this process has not seen placed
        while True:
            grown = self._events.growth()  # taken before reading: a publish meanwhile still wakes us
            batch = await self._events.read_after(cursor, WATCH_BATCH, probe=probe)
            probe = False
            for event in batch:
                if event.sequence != cursor + 1:  # read_after never skips; a gap would be a bug
                    raise RuntimeError(f"event trail gap: expected {cursor + 1}, read {event.sequence}")
                cursor = event.sequence
                if scope.matches(event):
                    yield event
            if batch:
                continue
            if self._events.closed:
                raise Unavailable(
                    f"the metadata service is shutting down; reconnect with after_sequence={cursor}",
                    reason="SHUTTING_DOWN",
                    metadata={"last_sequence": str(cursor)},
                )
            # Events placed by this process wake us at once (and are in memory); the timeout
            # makes the next read probe the database for events placed by other processes.
            try:
                await asyncio.wait_for(grown.wait(), WATCH_POLL_SECONDS)
            except TimeoutError:
                probe = True

    async def _history(self, resource: str, moment: datetime, actions: Sequence[str] = ()) -> list[Event]:
        condition = list_condition(resource=resource, actions=list(actions), end_time=None)
        condition["time"] = {"$lte": moment}
        found: list[Event] = []
        after = 0
        while True:
            page = await self._events.search(condition, after, paging.MAX_PAGE_SIZE)
            found += page
            if len(page) < paging.MAX_PAGE_SIZE:
                return found
            after = page[-1].sequence

    async def version_at(self, name: ModelVersionName, moment: datetime) -> tuple[ModelVersion, Event]:
        history = await self._history(str(name), moment)
        state: audit.Json | None = None
        for event in history:
            if event.action == Action.MODEL_VERSION_CREATED:
                state = dict(event.after)
            elif event.action == Action.MODEL_VERSION_PURGED:
                state = None
            elif state is not None:
                state = audit.apply(state, event)
        if state is None:
            purged = bool(history) and history[-1].action == Action.MODEL_VERSION_PURGED
            raise NotFound(
                f"model version {name} {'had been purged' if purged else 'did not exist'} "
                f"at {moment.isoformat()}",
                reason="NOT_FOUND_AT_TIME",
            )
        return audit.version_from_state(name, state, history[-1].time), history[-1]

    async def alias_at(self, name: AliasName, moment: datetime) -> tuple[Alias, Event]:
        moves = (Action.ALIAS_CREATED, Action.ALIAS_MOVED, Action.ALIAS_DELETED)
        history = await self._history(str(name), moment, [a.value for a in moves])
        if not history or history[-1].action == Action.ALIAS_DELETED:
            raise NotFound(f"alias {name} did not exist at {moment.isoformat()}", reason="NOT_FOUND_AT_TIME")
        last = history[-1]
        number = last.after.get("version_number")
        if number is None:  # a move that changed only the actor: the number is in an earlier event
            number = next(e.after["version_number"] for e in reversed(history) if "version_number" in e.after)
        alias = Alias(name=name, version_number=int(number), update_time=last.time, update_actor=last.actor)
        return alias, last
