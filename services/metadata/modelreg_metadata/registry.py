"""The registry's use cases: every read and write of namespaces, models, versions, aliases and
metrics goes through here.

This is the one place that stamps identity, time and etags on a change, and each change is a
single-document write in the store that hands back the resource before and after it. `_changed`
receives every committed change with the actor and request id: the governance work (audit events
through a per-document outbox, reviews, protected aliases) hooks in there and nowhere else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
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
from modelreg_common.context import current_actor, current_request_id
from modelreg_common.errors import FailedPrecondition, InvalidArgument, NotFound

from modelreg_metadata import domain
from modelreg_metadata.domain import (
    Alias,
    ComparedRow,
    MetricPoint,
    Model,
    ModelFile,
    ModelVersion,
    Namespace,
    VersionState,
)
from modelreg_metadata.filtering import Path, parse_filter, parse_order_by
from modelreg_metadata.store import ModelStore, NamespaceStore, Page, VersionStore
from modelreg_metadata.store.mongo import new_etag, now
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

MAX_COMPARED_VERSIONS = 100
DEFAULT_HISTORY_PAGE = 1000
MAX_HISTORY_PAGE = 10_000


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
    updatable=frozenset({"display_name", "description", "labels"}),
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
        }
    ),
    immutable=frozenset({"name"}),
    frozen_when_sealed=frozenset({"params", "lineage", "signature"}),
)


def _copy(target: T, source: Any, paths: Sequence[str]) -> T:
    return replace(target, **{path: getattr(source, path) for path in paths})  # type: ignore[type-var]


def _changed_fields(before: Any, after: Any) -> dict[str, tuple[Any, Any]]:
    if before is None or after is None:
        return {}
    return {
        f.name: (getattr(before, f.name), getattr(after, f.name))
        for f in fields(before)
        if f.name not in ("update_time", "etag") and getattr(before, f.name) != getattr(after, f.name)
    }


def _request_key(kind: str, scope: str, request_id: str) -> str:
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument("request_id", "must be at most 128 printable characters")
    return f"{kind} {scope} {request_id}"


class Registry:
    def __init__(self, namespaces: NamespaceStore, models: ModelStore, versions: VersionStore):
        self._namespaces = namespaces
        self._models = models
        self._versions = versions

    def _changed(self, action: str, resource: str, before: Any, after: Any) -> None:
        """Every committed change passes here once (the hook for the audit trail)."""
        changed = _changed_fields(before, after)
        log.debug(
            "change",
            action=action,
            resource=resource,
            actor=current_actor(),
            request_id=current_request_id(),
            fields=sorted(changed),
        )

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
            create_time=moment,
            update_time=moment,
            etag=new_etag(),
            create_actor=current_actor(),
        )

    async def create_namespace(self, namespace_id: str, draft: Namespace, request_id: str) -> Namespace:
        name = NamespaceName(check_namespace_id(namespace_id, "namespace_id"))
        self._check_namespace_fields(draft)
        request_key = _request_key("CreateNamespace", str(name), request_id) if request_id else ""
        namespace = await self._namespaces.insert_namespace(self._new_namespace(name, draft), request_key)
        self._changed("CreateNamespace", str(name), None, namespace)
        return namespace

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

        before, after = await self._namespaces.update_namespace(draft.name, mutate, draft.etag)
        self._changed("UpdateNamespace", str(draft.name), before, after)
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
        await self._namespaces.ensure_namespace(self._new_namespace(parent))
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
        created = await self._models.insert_model(model, request_key)
        if created is model:
            self._changed("CreateModel", str(name), None, created)
        return created

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

        before, after = await self._models.update_model(draft.name, mutate, draft.etag)
        self._changed("UpdateModel", str(draft.name), before, after)
        return after

    async def delete_model(self, name: ModelName, etag: str) -> Model:
        def mutate(current: Model) -> Model:
            return replace(current, deleted=True, update_time=now(), etag=new_etag())

        before, after = await self._models.update_model(name, mutate, etag)
        self._changed("DeleteModel", str(name), before, after)
        return after

    async def undelete_model(self, name: ModelName) -> Model:
        def mutate(current: Model) -> Model:
            if not current.deleted:
                raise FailedPrecondition(f"model {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False, update_time=now(), etag=new_etag())

        before, after = await self._models.update_model(name, mutate, "", include_deleted=True)
        self._changed("UndeleteModel", str(name), before, after)
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
        )
        model = await self._models.get_model(parent)
        version = replace(version, model_uid=model.uid)
        if request_id:
            request_key, client_key = _request_key("CreateModelVersion", str(parent), request_id), True
        else:
            request_key, client_key = f"auto {version.uid}", False  # unique and never null
        created = await self._versions.insert_version(version, request_key, client_key)
        if created.uid == version.uid:
            self._changed("CreateModelVersion", str(created.name), None, created)
        return created

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
        action: str,
        name: ModelVersionName,
        mutate: Callable[[ModelVersion], ModelVersion],
        etag: str = "",
        *,
        include_deleted: bool = False,
    ) -> ModelVersion:
        def stamped(current: ModelVersion) -> ModelVersion:
            changed = mutate(current)
            if changed is current:
                return current
            return replace(changed, update_time=now(), etag=new_etag())

        before, after = await self._versions.update_version(
            name, stamped, etag, include_deleted=include_deleted
        )
        if after is not before:
            self._changed(action, str(name), before, after)
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

        return await self._update_version("UpdateModelVersion", draft.name, mutate, draft.etag)

    async def delete_version(self, name: ModelVersionName, etag: str) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if current.aliases:
                raise FailedPrecondition(
                    f"model version {name} is the target of alias(es) {', '.join(current.aliases)}; "
                    "move or delete them first",
                    reason="VERSION_HAS_ALIASES",
                )
            return replace(current, deleted=True)

        return await self._update_version("DeleteModelVersion", name, mutate, etag)

    async def undelete_version(self, name: ModelVersionName) -> ModelVersion:
        def mutate(current: ModelVersion) -> ModelVersion:
            if not current.deleted:
                raise FailedPrecondition(f"model version {name} is not deleted", reason="NOT_DELETED")
            return replace(current, deleted=False)

        return await self._update_version("UndeleteModelVersion", name, mutate, include_deleted=True)

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

        return await self._update_version("ArchiveModelVersion", name, mutate, etag)

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

        return await self._update_version("UnarchiveModelVersion", name, mutate, etag)

    async def add_file(self, name: ModelVersionName, file: ModelFile) -> ModelVersion:
        domain.check_text("file.content_type", file.content_type, domain.MAX_CONTENT_TYPE_CHARS)
        stamped = replace(file, create_time=now())

        def mutate(current: ModelVersion) -> ModelVersion:
            if current.state is not VersionState.PENDING:
                raise FailedPrecondition(
                    f"model version {name} is {current.state.value}; files can be added only while PENDING",
                    reason="VERSION_SEALED",
                )
            files = {f.path: f for f in current.files}
            present = files.get(file.path)
            if present and (present.sha256, present.size_bytes) == (file.sha256, file.size_bytes):
                return current  # the same content again: nothing changes
            files[file.path] = stamped
            ordered = sorted(files.values(), key=lambda f: f.path)
            domain.check_manifest_room(ordered, name)
            return replace(current, files=ordered, manifest_digest=domain.manifest_digest(ordered))

        return await self._update_version("AddModelVersionFile", name, mutate)

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

        return await self._update_version("SealModelVersion", name, mutate, etag)

    # Aliases

    async def set_alias(self, name: AliasName, target: ModelVersionName, etag: str) -> Alias:
        if target.model_name != name.model_name:
            raise InvalidArgument(
                "model_version",
                f"{target} belongs to another model than alias {name}; an alias points within its model",
            )
        version = await self._versions.get_version(target)  # NOT_FOUND before any alias changes
        if version.state is VersionState.ARCHIVED:
            raise FailedPrecondition(
                f"model version {target} is ARCHIVED; unarchive it before pointing an alias at it",
                reason="VERSION_ARCHIVED",
            )

        def change(current: Alias | None) -> Alias:
            return Alias(
                name=name,
                version_number=target.number,
                update_time=now(),
                update_actor=current_actor(),
                etag=new_etag(),
            )

        before, after = await self._models.change_alias(name, change, etag)
        self._changed("SetAlias", str(name), before, after)
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
        def change(current: Alias | None) -> None:
            if current is None:
                raise NotFound(f"alias {name} not found")

        before, _ = await self._models.change_alias(name, change, etag)
        self._changed("DeleteAlias", str(name), before, None)

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
        before, after = await self._versions.log_metrics(name, stamped, request_key)
        if after is not before:
            self._changed("LogMetrics", str(name), before, after)
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
