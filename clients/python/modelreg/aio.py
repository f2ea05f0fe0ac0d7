"""`AsyncClient`: the registry for asyncio code. `modelreg.Client` is the same API, blocking.

Models and versions are named the way people type them (`team/model`, `team/model/3`,
`team/model@production`) or by full resource name. Resources come back as the API's protobuf
messages (`modelregistry.v1.model_pb2`), so every field the server sends is there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

from google.protobuf import duration_pb2, field_mask_pb2, json_format, struct_pb2
from modelreg_api import names
from modelreg_api.addresses import ServiceAddresses
from modelreg_api.names import AliasName, ModelName, ModelVersionName
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from modelreg import access, credentials, events
from modelreg.access import RoleLike
from modelreg.comparison import Comparison
from modelreg.connection import Connection
from modelreg.downloads import Downloader, stream_file
from modelreg.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelreg.journal import Journal
from modelreg.local_files import describe_files
from modelreg.progress import NoProgress, TransferProgress
from modelreg.pulls import pull_files
from modelreg.pushes import push_key, resume_or_create, upload_missing
from modelreg.results import Page, PullResult, PushResult
from modelreg.settings import ClientSettings
from modelreg.uploads import Uploader

LineageLike = model_pb2.Lineage | Mapping[str, Any]
SignatureLike = model_pb2.Signature | Mapping[str, Any]
# Which way a metric improves: "max" (higher is better) or "min", or the API's enum value.
DirectionLike: TypeAlias = "str | model_pb2.MetricDirection.ValueType"

_DIRECTIONS: dict[str, model_pb2.MetricDirection.ValueType] = {
    "max": model_pb2.METRIC_DIRECTION_MAXIMIZE,
    "maximize": model_pb2.METRIC_DIRECTION_MAXIMIZE,
    "higher": model_pb2.METRIC_DIRECTION_MAXIMIZE,
    "min": model_pb2.METRIC_DIRECTION_MINIMIZE,
    "minimize": model_pb2.METRIC_DIRECTION_MINIMIZE,
    "lower": model_pb2.METRIC_DIRECTION_MINIMIZE,
}


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _lineage(value: LineageLike | None) -> model_pb2.Lineage | None:
    if value is None or isinstance(value, model_pb2.Lineage):
        return value
    return json_format.ParseDict(dict(value), model_pb2.Lineage())


def _signature(value: SignatureLike | None) -> model_pb2.Signature | None:
    if value is None or isinstance(value, model_pb2.Signature):
        return value
    return json_format.ParseDict(dict(value), model_pb2.Signature())


class AsyncClient:
    """A connection to both services; open it with `async with AsyncClient() as registry:`.

    Arguments left as None come from the environment (`MODELREG_METADATA_ADDR`,
    `MODELREG_ARTIFACT_ADDR`, `MODELREG_CACHE_DIR`), then from the defaults that `make run` uses.
    Pass `settings` for full control (retries, deadlines, parallelism).

    Calls act as the principal of the credential: `token` (an API token `mrt_...` or a JWT), else
    `MODELREG_TOKEN`, `MODELREG_TOKEN_FILE`, the login stored by `modelreg login` for the metadata
    address, and for a registry on this machine only, the local stack's admin credential
    (`modelreg.credentials` has the details). `token=""` sends no credential.
    """

    def __init__(
        self,
        *,
        metadata_addr: str | None = None,
        artifact_addr: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        cache_dir: str | Path | None = None,
        parallel_files: int | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        given = None if token is None else credentials.given(token, "the token argument")
        base = settings or ClientSettings.from_environment(
            metadata_addr=metadata_addr, artifact_addr=artifact_addr, credential=given
        )
        self.settings = replace(
            base,
            addresses=ServiceAddresses(
                metadata=metadata_addr or base.addresses.metadata,
                artifacts=artifact_addr or base.addresses.artifacts,
            ),
            token=base.token if given is None else given.token,
            token_source=base.token_source if given is None else given.source,
            timeout=base.timeout if timeout is None else timeout,
            cache_dir=base.cache_dir if cache_dir is None else Path(cache_dir).expanduser(),
            parallel_files=base.parallel_files if parallel_files is None else max(1, parallel_files),
        )
        self._connection = Connection(self.settings)
        self._uploader = Uploader(self._connection, Journal(self.settings.cache_dir / "uploads"))
        self._downloader = Downloader(self._connection)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._connection.close()

    def acting_as(self, token: str, *, source: str = "acting_as") -> AsyncClient:
        """A client over this one's channels whose calls present `token` (an API token or JWT),
        so they act as its principal. For services that call the registry on behalf of many
        users (the web UI): one pair of channels, one light client per request. Closing it leaves
        the channels open; close this client to close them."""
        client = object.__new__(AsyncClient)
        client.settings = replace(self.settings, token=token, token_source=source)
        client._connection = self._connection.with_token(token, source)
        client._uploader = Uploader(client._connection, Journal(client.settings.cache_dir / "uploads"))
        client._downloader = Downloader(client._connection)
        return client

    # Namespaces

    async def get_namespace(self, namespace: str) -> model_pb2.Namespace:
        """A namespace (`team` or `namespaces/team`) and its settings, e.g. `allow_self_approval`."""
        request = md.GetNamespaceRequest(name=_namespace(namespace))
        return await self._connection.unary(self._connection.metadata.GetNamespace, request)

    async def list_namespaces(self, *, page_size: int = 0) -> AsyncIterator[model_pb2.Namespace]:
        """Every namespace, fetched a page at a time."""
        pages = self._connection.pages(
            self._connection.metadata.ListNamespaces,
            lambda token: md.ListNamespacesRequest(page_size=page_size, page_token=token),
        )
        async for page in pages:
            for namespace in page.namespaces:
                yield namespace

    async def update_namespace(
        self,
        namespace: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        allow_self_approval: bool | None = None,
        etag: str = "",
    ) -> model_pb2.Namespace:
        """Change the settings given (the others stay); `labels` replaces all labels.

        `allow_self_approval=True` lets the creator of a version approve it in this namespace
        (small teams); by default the approver must be someone else (four eyes). With `etag`
        (from a previous `Namespace`), only if nobody changed the namespace since (`Aborted`).
        A namespace exists once a model was created in it.
        """
        changes: dict[str, Any] = {
            "display_name": display_name,
            "description": description,
            "labels": None if labels is None else dict(labels),
            "allow_self_approval": allow_self_approval,
        }
        changes = {field: value for field, value in changes.items() if value is not None}
        if not changes:
            raise ValueError("nothing to update: pass at least one setting")
        request = md.UpdateNamespaceRequest(
            namespace=model_pb2.Namespace(name=_namespace(namespace), etag=etag, **changes),
            # Explicit: a field set to its default (False, "") is otherwise not an update.
            update_mask=field_mask_pb2.FieldMask(paths=sorted(changes)),
        )
        return await self._connection.unary(self._connection.metadata.UpdateNamespace, request)

    # Identity, API tokens and role bindings (AccessService)

    async def whoami(self) -> acc.CallerIdentity:
        """Who this client's credential acts as: `principal`, `groups`, how it authenticated
        (`authentication`: `token:{id}`, `jwt:{issuer}`, ...), the role `bindings` that apply to
        it, and a restricted token's `restriction`. `Unauthenticated` without a valid credential."""
        return await self._connection.unary(
            self._connection.access.GetCallerIdentity, acc.GetCallerIdentityRequest()
        )

    async def create_token(
        self,
        principal: str | None = None,
        *,
        description: str = "",
        ttl: timedelta | None = None,
        namespaces: Iterable[str] = (),
        max_role: RoleLike | None = None,
    ) -> tuple[acc.ApiToken, str]:
        """A new API token and its secret (`mrt_...`), which is returned only this once: the
        registry keeps only its hash. Store it like a password.

        For the caller itself, or (global admins) for `principal` (`user:...`,
        `serviceaccount:...`). `ttl` from 1 minute to 366 days (default 90 days). `namespaces`
        (`team` or `namespaces/team`) limits where the token works, and `max_role` caps the
        role it acts with (`viewer`, `editor`, `approver`, `admin`); the owner's own roles still
        bound both.
        """
        request = acc.CreateApiTokenRequest(
            principal=principal or "",
            description=description,
            ttl=_duration(ttl),
            restriction=acc.TokenRestriction(
                namespaces=[access.namespace_id(namespace) for namespace in namespaces],
                max_role=acc.ROLE_UNSPECIFIED
                if max_role is None
                else access.parse_role(max_role, "max_role"),
            ),
        )
        response = await self._connection.unary(self._connection.access.CreateApiToken, request)
        return response.token, response.secret

    async def list_tokens(
        self, principal: str | None = None, *, show_inactive: bool = False, page_size: int = 0
    ) -> AsyncIterator[acc.ApiToken]:
        """The caller's API tokens, or (global admins) those of `principal`, or everyone's with
        `principal="-"`; revoked and expired ones too with `show_inactive`. Never the secrets."""
        pages = self._connection.pages(
            self._connection.access.ListApiTokens,
            lambda token: acc.ListApiTokensRequest(
                principal=principal or "", show_inactive=show_inactive, page_size=page_size, page_token=token
            ),
        )
        async for page in pages:
            for api_token in page.tokens:
                yield api_token

    async def revoke_token(self, name_or_id: str) -> acc.ApiToken:
        """Revoke an API token (`tokens/{id}` or the id): calls with it fail from now on, on every
        replica within seconds. Revoking a revoked token returns it unchanged."""
        request = acc.RevokeApiTokenRequest(name=access.token_name(name_or_id, "name_or_id"))
        return await self._connection.unary(self._connection.access.RevokeApiToken, request)

    async def grant_role(self, namespace: str, principal: str, role: RoleLike) -> acc.RoleBinding:
        """Give `principal` (`user:...`, `serviceaccount:...`, `group:...`) `role` (`viewer`,
        `editor`, `approver`, `admin`) in `namespace` (`team`; `-` for every namespace).
        Granting a binding that exists returns it unchanged. Needs the admin role there."""
        request = acc.GrantRoleRequest(
            parent=access.binding_parent(namespace), principal=principal, role=access.parse_role(role)
        )
        return await self._connection.unary(self._connection.access.GrantRole, request)

    async def revoke_role(self, namespace: str, principal: str, role: RoleLike) -> None:
        """Remove the one binding of `role` to `principal` in `namespace` (`-`: every namespace);
        `NotFound` when there is no such binding."""
        request = acc.RevokeRoleRequest(
            parent=access.binding_parent(namespace), principal=principal, role=access.parse_role(role)
        )
        await self._connection.unary(self._connection.access.RevokeRole, request)

    async def list_role_bindings(
        self, namespace: str, *, page_size: int = 0
    ) -> AsyncIterator[acc.RoleBinding]:
        """The role bindings of `namespace` (`team`), or with `-` those that hold in every
        namespace, in principal order."""
        parent = access.binding_parent(namespace)
        pages = self._connection.pages(
            self._connection.access.ListRoleBindings,
            lambda token: acc.ListRoleBindingsRequest(parent=parent, page_size=page_size, page_token=token),
        )
        async for page in pages:
            for binding in page.bindings:
                yield binding

    async def list_namespaces_page(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> Page[model_pb2.Namespace]:
        """One page of namespaces, for callers that page themselves (`list_namespaces` iterates)."""
        response = await self._connection.unary(
            self._connection.metadata.ListNamespaces,
            md.ListNamespacesRequest(page_size=page_size, page_token=page_token),
        )
        return Page(list(response.namespaces), response.next_page_token)

    # Models

    async def create_model(
        self,
        model: str,
        *,
        display_name: str = "",
        description: str = "",
        owner: str = "",
        labels: Mapping[str, str] | None = None,
        model_card: str = "",
        request_id: str = "",
    ) -> model_pb2.Model:
        """Register `namespace/model`; raises `AlreadyExists` if the name is taken."""
        name = names.parse_model_ref(model)
        request = md.CreateModelRequest(
            parent=f"namespaces/{name.namespace}",
            model_id=name.model,
            model=model_pb2.Model(
                display_name=display_name,
                description=description,
                owner=owner,
                labels=dict(labels or {}),
                model_card=model_card,
            ),
            request_id=request_id or _new_request_id(),
        )
        return await self._connection.unary(self._connection.metadata.CreateModel, request)

    async def get_model(self, model: str) -> model_pb2.Model:
        name = names.parse_model_ref(model)
        return await self._connection.unary(
            self._connection.metadata.GetModel, md.GetModelRequest(name=str(name))
        )

    async def ensure_model(self, model: str) -> model_pb2.Model:
        """The model, registered first if it does not exist yet."""
        try:
            return await self.get_model(model)
        except NotFound:
            pass
        try:
            return await self.create_model(model)
        except AlreadyExists:  # a concurrent push created it in between
            return await self.get_model(model)

    async def list_models(self, namespace: str, *, page_size: int = 0) -> AsyncIterator[model_pb2.Model]:
        """Every model of a namespace (`team` or `namespaces/team`), fetched a page at a time."""
        parent = _namespace(namespace)
        pages = self._connection.pages(
            self._connection.metadata.ListModels,
            lambda token: md.ListModelsRequest(parent=parent, page_size=page_size, page_token=token),
        )
        async for page in pages:
            for model in page.models:
                yield model

    async def list_models_page(
        self,
        namespace: str,
        *,
        filter: str = "",
        order_by: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[model_pb2.Model]:
        """One page of a namespace's models matching `filter` (the filter language, e.g.
        `owner = "team-a"`), in `order_by` order (e.g. `update_time desc`)."""
        request = md.ListModelsRequest(
            parent=_namespace(namespace),
            filter=filter,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._connection.unary(self._connection.metadata.ListModels, request)
        return Page(list(response.models), response.next_page_token)

    # Versions

    async def create_version(
        self,
        model: str,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: LineageLike | None = None,
        signature: SignatureLike | None = None,
        request_id: str = "",
    ) -> model_pb2.ModelVersion:
        """A new PENDING version with no files yet; `push` does this, the uploads and the seal."""
        name = names.parse_model_ref(model)
        draft = _draft(
            description=description,
            params=params,
            metrics=metrics,
            tags=tags,
            lineage=lineage,
            signature=signature,
        )
        return await self._create_version(name, draft, request_id or _new_request_id())

    async def _create_version(
        self, model: ModelName, draft: model_pb2.ModelVersion, request_id: str
    ) -> model_pb2.ModelVersion:
        request = md.CreateModelVersionRequest(parent=str(model), model_version=draft, request_id=request_id)
        return await self._connection.unary(self._connection.metadata.CreateModelVersion, request)

    async def get_version(self, version: str) -> model_pb2.ModelVersion:
        """A version by `team/model/3`, `team/model@alias` or resource name."""
        ref = names.parse_version_ref(version)
        if isinstance(ref, AliasName):
            return await self._connection.unary(
                self._connection.metadata.GetModelVersionByAlias,
                md.GetModelVersionByAliasRequest(name=str(ref)),
            )
        return await self._connection.unary(
            self._connection.metadata.GetModelVersion, md.GetModelVersionRequest(name=str(ref))
        )

    async def list_versions(
        self,
        model: str,
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
    ) -> AsyncIterator[model_pb2.ModelVersion]:
        """The versions of a model matching `filter`, in `order_by` order, a page at a time.

        `filter` is the registry's filter language (docs/filter-language.md), e.g.
        `metrics.auc > 0.9 AND (tags.team = "a" OR params.optimizer.lr <= 1e-3)`; `order_by`
        is comma-separated keys with optional `desc`, e.g. `metrics.auc desc, number`. The
        default order is oldest first. Iterating fetches the next page when needed.
        """
        parent = str(names.parse_model_ref(model))
        async for version in self._versions(parent, filter, order_by, show_deleted, page_size):
            yield version

    async def search_versions(
        self,
        namespace: str,
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
    ) -> AsyncIterator[model_pb2.ModelVersion]:
        """Like `list_versions`, across every model of a namespace (`team` or `namespaces/team`)."""
        parent = f"{_namespace(namespace)}/models/-"
        async for version in self._versions(parent, filter, order_by, show_deleted, page_size):
            yield version

    async def _versions(
        self, parent: str, filter_: str, order_by: str, show_deleted: bool, page_size: int
    ) -> AsyncIterator[model_pb2.ModelVersion]:
        pages = self._connection.pages(
            self._connection.metadata.ListModelVersions,
            lambda token: md.ListModelVersionsRequest(
                parent=parent,
                filter=filter_,
                order_by=order_by,
                show_deleted=show_deleted,
                page_size=page_size,
                page_token=token,
            ),
        )
        async for page in pages:
            for version in page.model_versions:
                yield version

    async def list_versions_page(
        self,
        model: str,
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[model_pb2.ModelVersion]:
        """One page of `list_versions`; `model` may be `team/-` for every model of `team`."""
        namespace, _, model_id = model.partition("/")
        parent = f"{_namespace(namespace)}/models/-" if model_id == "-" else str(names.parse_model_ref(model))
        request = md.ListModelVersionsRequest(
            parent=parent,
            filter=filter,
            order_by=order_by,
            show_deleted=show_deleted,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._connection.unary(self._connection.metadata.ListModelVersions, request)
        return Page(list(response.model_versions), response.next_page_token)

    async def metric_history(
        self, version: str, key: str, *, limit: int = 10_000
    ) -> list[model_pb2.MetricPoint]:
        """The logged points of metric `key` of a version (`team/model/3`), in step order, at most
        `limit` of them (the first ones)."""
        name = str(_version_name(version))
        points: list[model_pb2.MetricPoint] = []
        token = ""
        while len(points) < limit:
            request = md.ListMetricHistoryRequest(
                model_version=name,
                metric_key=key,
                page_size=min(10_000, limit - len(points)),
                page_token=token,
            )
            response = await self._connection.unary(self._connection.metadata.ListMetricHistory, request)
            points.extend(response.points)
            token = response.next_page_token
            if not token:
                break
        return points[:limit]

    async def compare_versions(self, *versions: str) -> Comparison:
        """Metrics and params of 2 to 100 versions side by side, differences marked.

        Versions are named like `get_version` takes them (`team/model/3`, `team/model@production`,
        of one model or several); aliases are resolved first. Rows come sorted by key.
        """
        resolved = [await self._resolve_version(version) for version in versions]
        response = await self._connection.unary(
            self._connection.metadata.CompareModelVersions,
            md.CompareModelVersionsRequest(names=[str(name) for name in resolved]),
        )
        return Comparison.from_proto(response)

    async def _resolve_version(self, version: str) -> ModelVersionName:
        ref = names.parse_version_ref(version)
        if isinstance(ref, AliasName):
            return names.parse_model_version_name((await self.get_version(str(ref))).name)
        return ref

    async def seal_version(self, version: str, *, etag: str = "") -> model_pb2.ModelVersion:
        """Freeze a PENDING version's manifest and lineage (state READY); sealing twice is a no-op."""
        name = _version_name(version)
        return await self._connection.unary(
            self._connection.metadata.SealModelVersion, md.SealModelVersionRequest(name=str(name), etag=etag)
        )

    async def delete_version(self, version: str, *, etag: str = "") -> model_pb2.ModelVersion:
        """Soft-delete a version: reads and lists no longer show it (`show_deleted` lists it), and
        its files stay in the registry. `undelete_version` restores it; `purge_version` removes it
        for good. Refused (`FailedPrecondition`, reason `VERSION_HAS_ALIASES`) while an alias
        points at it; with `etag`, only if nobody changed the version since (`Aborted`)."""
        request = md.DeleteModelVersionRequest(name=str(_version_name(version)), etag=etag)
        return await self._connection.unary(self._connection.metadata.DeleteModelVersion, request)

    async def undelete_version(self, version: str) -> model_pb2.ModelVersion:
        """Restore a soft-deleted version (not a purged one)."""
        request = md.UndeleteModelVersionRequest(name=str(_version_name(version)))
        return await self._connection.unary(self._connection.metadata.UndeleteModelVersion, request)

    async def purge_version(self, version: str, *, etag: str = "") -> None:
        """Remove a soft-deleted version for good. Irreversible.

        Its metadata, manifest and metric history are deleted; its files no longer count as
        used, so the artifact service's garbage collector deletes those no other version lists
        once their grace period is over. Its number is never reused, and its past events stay in
        the audit trail, followed by a `MODEL_VERSION_PURGED` event. Raises `FailedPrecondition`
        (reason `NOT_DELETED`) for a version not deleted first, and `NotFound` (reason
        `VERSION_PURGED`) for one purged already; with `etag`, only if nobody changed the version
        since (`Aborted`).
        """
        request = md.PurgeModelVersionRequest(name=str(_version_name(version)), etag=etag)
        await self._connection.unary(self._connection.metadata.PurgeModelVersion, request)

    async def push(
        self,
        model: str,
        path: str | Path,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: LineageLike | None = None,
        signature: SignatureLike | None = None,
        alias: str | None = None,
        create_model: bool = True,
        progress: TransferProgress | None = None,
        version: int | None = None,
        replace: bool = False,
        request_id: str = "",
    ) -> PushResult:
        """Register a file or a directory as a new, sealed version of `model`.

        Hashes the files, creates the version (and the model, unless `create_model` is False),
        uploads the files in parallel, seals the version and points `alias` at it. Content the
        registry already stores (in any model) is recorded without sending its bytes. Running
        the same push again after an interruption continues the version it had started, and
        each large file from the last byte the service had committed.

        With `version`, the files go into that existing PENDING version of `model` instead
        (its metadata stays as it is: pass none here), which is then sealed. A path it already
        holds with other content is refused (`AlreadyExists`, reason FILE_EXISTS) unless
        `replace`; each replacement is a MODEL_VERSION_FILE_REPLACED event in the audit trail.

        `request_id` (at most 128 printable characters, e.g. a Kubernetes Job's uid) makes the
        push idempotent across machines: a push repeated with it, even from an empty cache,
        continues the version the first one created instead of creating another. The same id
        with other metadata is refused (`InvalidArgument`, reason REQUEST_ID_REUSED).
        """
        name = names.parse_model_ref(model)
        if alias is not None:
            names.check_alias_id(alias, "alias")
        draft = _draft(
            description=description,
            params=params,
            metrics=metrics,
            tags=tags,
            lineage=lineage,
            signature=signature,
        )
        if version is not None and _has_metadata(draft):
            raise InvalidArgument(
                "version",
                "a push into an existing version keeps its metadata; set it with update_version instead",
            )
        progress = progress or NoProgress()
        files = await describe_files(Path(path), self.settings.parallel_files, progress)
        journal = Journal(self.settings.cache_dir / "pushes")
        key = ""
        if version is not None:
            target, resumed = await self.get_version(str(name.version(version))), False
        else:
            if create_model:
                await self.ensure_model(str(name))
            key = push_key(name, draft, files)
            target, resumed = await resume_or_create(
                journal,
                key,
                files,
                get_version=self.get_version,
                create_version=lambda request: self._create_version(name, draft, request),
                request_id=request_id,
            )
        transferred = await upload_missing(
            self._uploader,
            target,
            files,
            parallel=self.settings.parallel_files,
            progress=progress,
            replace=replace,
        )
        target = await self.seal_version(target.name)
        if alias is not None:
            await self.set_alias(str(name), alias, target.number)
            target = await self.get_version(target.name)
        if key:
            journal.remove(key)
        return PushResult(target, transferred, alias or "", resumed)

    # Aliases

    async def set_alias(
        self, model: str, alias: str, version: int | str, *, etag: str = ""
    ) -> model_pb2.Alias:
        """Point `alias` at a version of `model` (a number or a version reference).

        With `etag` (from a previous `Alias`), the move happens only if nobody moved the alias
        since; otherwise `Aborted` is raised.
        """
        name = names.parse_model_ref(model)
        target = name.version(version) if isinstance(version, int) else _version_name(version)
        request = md.SetAliasRequest(
            name=str(name.alias(names.check_alias_id(alias, "alias"))), model_version=str(target), etag=etag
        )
        return await self._connection.unary(self._connection.metadata.SetAlias, request)

    async def get_alias(self, model: str, alias: str) -> model_pb2.Alias:
        """The alias, with the version it points at and its protection, if any."""
        name = _alias_name(model, alias)
        return await self._connection.unary(self._connection.metadata.GetAlias, md.GetAliasRequest(name=name))

    async def list_aliases(self, model: str, *, page_size: int = 0) -> AsyncIterator[model_pb2.Alias]:
        """Every alias of a model."""
        parent = str(names.parse_model_ref(model))
        pages = self._connection.pages(
            self._connection.metadata.ListAliases,
            lambda token: md.ListAliasesRequest(parent=parent, page_size=page_size, page_token=token),
        )
        async for page in pages:
            for alias in page.aliases:
                yield alias

    async def list_aliases_page(
        self, model: str, *, page_size: int = 0, page_token: str = ""
    ) -> Page[model_pb2.Alias]:
        """One page of a model's aliases (with their protection), in alias order."""
        request = md.ListAliasesRequest(
            parent=str(names.parse_model_ref(model)), page_size=page_size, page_token=page_token
        )
        response = await self._connection.unary(self._connection.metadata.ListAliases, request)
        return Page(list(response.aliases), response.next_page_token)

    async def delete_alias(self, model: str, alias: str, *, etag: str = "") -> None:
        """Remove an alias (the version stays). A protected alias must be unprotected first
        (`FailedPrecondition`, reason `ALIAS_PROTECTED`); with `etag`, only if nobody moved it."""
        request = md.DeleteAliasRequest(name=_alias_name(model, alias), etag=etag)
        await self._connection.unary(self._connection.metadata.DeleteAlias, request)

    async def protect_alias(
        self,
        model: str,
        alias: str,
        *,
        metric_gate: str = "",
        not_worse: Mapping[str, DirectionLike] | Iterable[tuple[str, DirectionLike]] = (),
    ) -> model_pb2.AliasProtection:
        """Protect an alias, or replace its rules; the alias need not exist yet.

        From then on `set_alias` moves it only to an approved, READY version that passes
        `metric_gate` (a condition over its metrics, e.g. `metrics.auc >= 0.9`) and is not worse
        than the version the alias points at now on each metric of `not_worse`, a mapping
        (or pairs) of metric to direction: `{"auc": "max", "latency_ms": "min"}`. A refused move
        raises `FailedPrecondition` whose `reason` names the rule (`METRIC_GATE_FAILED`,
        `METRIC_REGRESSION`, `METRIC_MISSING`, ...) and whose `metadata` holds the values.
        """
        pairs = not_worse.items() if isinstance(not_worse, Mapping) else not_worse
        protection = model_pb2.AliasProtection(
            name=_alias_name(model, alias),
            metric_gate=metric_gate,
            no_regression=[
                model_pb2.NoRegression(metric=metric, direction=_direction(metric, direction))
                for metric, direction in pairs
            ],
        )
        return await self._connection.unary(
            self._connection.metadata.ProtectAlias, md.ProtectAliasRequest(protection=protection)
        )

    async def get_alias_protection(self, model: str, alias: str) -> model_pb2.AliasProtection:
        """The rules of a protected alias; `NotFound` when it is not protected."""
        request = md.GetAliasProtectionRequest(name=_alias_name(model, alias))
        return await self._connection.unary(self._connection.metadata.GetAliasProtection, request)

    async def unprotect_alias(self, model: str, alias: str) -> None:
        """Remove an alias's protection: it moves freely again."""
        request = md.UnprotectAliasRequest(name=_alias_name(model, alias))
        await self._connection.unary(self._connection.metadata.UnprotectAlias, request)

    # Review

    async def submit_for_review(
        self, version: str, *, comment: str = "", etag: str = ""
    ) -> model_pb2.ModelVersion:
        """Ask for a version to be approved (again, after a rejection). Its `review_state`
        becomes PENDING; the step is appended to `reviews` with the actor and the comment."""
        request = md.SubmitModelVersionForReviewRequest(
            name=str(_version_name(version)), comment=comment, etag=etag
        )
        return await self._connection.unary(self._connection.metadata.SubmitModelVersionForReview, request)

    async def approve_version(
        self, version: str, *, comment: str = "", etag: str = ""
    ) -> model_pb2.ModelVersion:
        """Approve a submitted, READY version. The approver (this client's principal) must not be
        the version's creator unless the namespace allows self-approval: otherwise
        `PermissionDenied` with reason `SELF_APPROVAL_NOT_ALLOWED` (four eyes)."""
        request = md.ApproveModelVersionRequest(name=str(_version_name(version)), comment=comment, etag=etag)
        return await self._connection.unary(self._connection.metadata.ApproveModelVersion, request)

    async def reject_version(
        self, version: str, *, comment: str = "", etag: str = ""
    ) -> model_pb2.ModelVersion:
        """Reject a submitted version; it can be fixed and submitted again."""
        request = md.RejectModelVersionRequest(name=str(_version_name(version)), comment=comment, etag=etag)
        return await self._connection.unary(self._connection.metadata.RejectModelVersion, request)

    # Audit trail

    async def list_events(
        self,
        *,
        namespace: str = "",
        model: str = "",
        resource: str = "",
        actions: str | Iterable[str] = (),
        actor: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        after_sequence: int = 0,
        page_size: int = 0,
        newest_first: bool = False,
    ) -> AsyncIterator[event_pb2.Event]:
        """The audit trail in sequence order (`newest_first`: the latest event first), filtered,
        a page at a time.

        `namespace` (`team`), `model` (`team/model`: the model, its versions and aliases) and
        `resource` (`team/model/3`, `team/model@production`, or any resource name) narrow it,
        as do `actions` (`ALIAS_MOVED`, ...), `actor`, the time range [`start_time`,
        `end_time`) and `after_sequence`. Every mutation appears here a moment after its call
        returned (the relay places it), so read again or `watch_events` to wait for one.
        """
        scope = _event_filter(namespace, model, resource, actions)
        async for event in events.list_events(
            self._connection,
            scope,
            actor=actor,
            start_time=start_time,
            end_time=end_time,
            after_sequence=after_sequence,
            page_size=page_size,
            newest_first=newest_first,
        ):
            yield event

    async def list_events_page(
        self,
        *,
        namespace: str = "",
        model: str = "",
        resource: str = "",
        actions: str | Iterable[str] = (),
        actor: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        newest_first: bool = False,
    ) -> Page[event_pb2.Event]:
        """One page of `list_events`, with its cursor, for callers that page themselves. A
        cursor continues in the order it was made for (`newest_first` or not): passing it with
        the other order is refused (InvalidArgument naming `page_token`)."""
        scope = _event_filter(namespace, model, resource, actions)
        request = scope.list_request(
            actor=actor,
            start_time=start_time,
            end_time=end_time,
            after_sequence=0,
            page_size=page_size,
            page_token=page_token,
            newest_first=newest_first,
        )
        response = await self._connection.unary(self._connection.metadata.ListEvents, request)
        return Page(list(response.events), response.next_page_token)

    async def watch_events(
        self,
        *,
        after_sequence: int = 0,
        from_now: bool = False,
        namespace: str = "",
        model: str = "",
        resource: str = "",
        actions: str | Iterable[str] = (),
        reconnect: bool = True,
        on_reconnect: events.ReconnectCallback | None = None,
    ) -> AsyncIterator[event_pb2.Event]:
        """Every event after `after_sequence` (or, with `from_now`, after the latest one), in
        order, each exactly once, for as long as you iterate. Filters as in `list_events`.

        When the stream breaks (the service restarts, the network drops), it is re-opened after
        the last sequence seen, with backoff, and repeats are dropped, so nothing is missed or
        seen twice. `on_reconnect(error, after_sequence, delay)` is told before each attempt.
        Before the first successful connection the client's `RetryPolicy` bounds the attempts.
        Remember `event.sequence` to resume a later watch exactly where this one stopped; with
        `from_now`, a break before the first event resumes from "now" again unless the service
        said where it stopped (it does when it shuts down).
        """
        scope = _event_filter(namespace, model, resource, actions)
        async for event in events.follow(
            self._connection,
            scope,
            after_sequence=after_sequence,
            from_now=from_now,
            reconnect=reconnect,
            on_reconnect=on_reconnect,
        ):
            yield event

    async def state_at(self, ref: str, at: datetime) -> md.StateAtTime:
        """A version (`team/model/3`) or an alias (`team/model@production`) as it was at `at` (an
        aware datetime), rebuilt from the audit trail.

        The answer holds `model_version` (its metadata, metrics, state, review and manifest then)
        or `alias` (`version_number`: the version it pointed at, with who moved it there and
        when), and `as_of`: the last event applied, whose state held from its time until the
        resource's next event. `NotFound` (reason `NOT_FOUND_AT_TIME`) when the resource did not
        exist at that time, had been deleted (an alias) or purged (a version).
        """
        name = names.parse_version_ref(ref, "ref")
        request = md.GetStateAtTimeRequest(name=str(name), time=events.timestamp(at))
        return await self._connection.unary(self._connection.metadata.GetStateAtTime, request)

    async def aliases_at(self, model: str, at: datetime) -> list[md.StateAtTime]:
        """Every alias `model` had at `at`, sorted by alias, each as `state_at` answers it: which
        version it pointed at, moved by whom and when ("what was production on date X?").

        The aliases are found in the trail (each `ALIAS_CREATED` event of the model up to `at`);
        those deleted by then are left out.
        """
        name = names.parse_model_ref(model)
        # Event times are in milliseconds and an event counts at its own time; `end_time` is
        # exclusive. An alias created just after `at` is asked about and answers NOT_FOUND_AT_TIME.
        created = self.list_events(
            model=str(name), actions="ALIAS_CREATED", end_time=at + timedelta(milliseconds=1)
        )
        aliases = sorted({event.resource async for event in created})

        async def state(alias: str) -> md.StateAtTime | None:
            try:
                return await self.state_at(alias, at)
            except NotFound as exc:
                if exc.reason != "NOT_FOUND_AT_TIME":
                    raise
                return None

        found = await asyncio.gather(*(state(alias) for alias in aliases))
        return [item for item in found if item is not None]

    # Files

    async def pull(
        self,
        version: str,
        destination: str | Path,
        *,
        use_cache: bool = True,
        copy: bool = False,
        allow_pending: bool = False,
        force: bool = False,
        progress: TransferProgress | None = None,
    ) -> PullResult:
        """Download every file of a version into `destination`, each verified by SHA-256.

        An alias is resolved once, so all files come from the same version even if the alias
        moves meanwhile. Blobs already in the local cache are not transferred again; files are
        hard links into the cache (read-only) unless `copy` is set. With `use_cache=False` the
        bytes are staged inside `destination` and nothing is kept elsewhere.

        Files already in `destination` with the same bytes are kept as they are. Anything else
        under a path the version needs (another file, a directory, a link) raises
        `DestinationInTheWay` naming every such path before anything is downloaded, unless
        `force` is set: then exactly those paths are replaced once every file is verified.
        Files the version does not name are never touched.
        """
        resolved = await self.get_version(version)
        if resolved.state == model_pb2.MODEL_VERSION_STATE_PENDING and not allow_pending:
            raise FailedPrecondition(
                f"{resolved.name} is still PENDING (files may still be added); pull it once it is sealed",
                reason="VERSION_NOT_SEALED",
            )
        return await pull_files(
            self._downloader,
            resolved,
            names.parse_model_version_name(resolved.name),
            Path(destination),
            cache_root=self.settings.cache_dir if use_cache else None,
            copy=copy,
            force=force,
            parallel=self.settings.parallel_files,
            progress=progress or NoProgress(),
        )

    async def stream_file(self, version: model_pb2.ModelVersion, path: str) -> AsyncIterator[bytes]:
        """The bytes of one file of `version` (as `get_version` returned it), streamed in chunks
        as they arrive and never stored: for relaying a download (the web UI).

        The size and SHA-256 are checked against the manifest as the bytes pass; when they do not
        match, the last chunk is withheld and `IntegrityError` raised, so a relay can abort its
        response instead of completing it with bad bytes. `NotFound` for a path the version lacks.
        """
        file = next((f for f in version.files if f.path == path), None)
        if file is None:
            raise NotFound(f"{version.name} has no file {path[:64]!r}", reason="FILE_NOT_FOUND")
        async for chunk in stream_file(self._connection, names.parse_model_version_name(version.name), file):
            yield chunk

    async def verify_version(self, version: str) -> art.VerifyModelVersionResponse:
        """Have the artifact service re-read every stored file of a version and check its size
        and SHA-256 against the manifest (bit rot, a blob lost or overwritten behind its back).

        Returns the report: `checked_files`, `checked_bytes` and one `problems` entry per file
        that is missing or does not match (empty when the version is intact). Nothing is
        downloaded to this machine; the deadline grows with the version's size.
        """
        resolved = await self.get_version(version)
        size = sum(f.size_bytes for f in resolved.files)
        return await self._connection.unary(
            self._connection.artifacts.VerifyModelVersion,
            art.VerifyModelVersionRequest(model_version=resolved.name),
            deadline=self.settings.stream_timeout(size),
        )


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def _namespace(namespace: str) -> str:
    if namespace.startswith("namespaces/"):
        return str(names.parse_namespace_name(namespace, "namespace"))
    return str(names.NamespaceName(names.check_namespace_id(namespace, "namespace")))


def _alias_name(model: str, alias: str) -> str:
    return str(names.parse_model_ref(model).alias(names.check_alias_id(alias, "alias")))


def _direction(metric: str, direction: DirectionLike) -> model_pb2.MetricDirection.ValueType:
    if isinstance(direction, str):
        if direction.lower() in _DIRECTIONS:
            return _DIRECTIONS[direction.lower()]
    elif direction in (model_pb2.METRIC_DIRECTION_MAXIMIZE, model_pb2.METRIC_DIRECTION_MINIMIZE):
        return direction
    raise ValueError(f"metric {metric!r}: direction {direction!r} is not 'max' or 'min'")


def _event_filter(
    namespace: str, model: str, resource: str, actions: str | Iterable[str]
) -> events.EventFilter:
    """Short references (`team`, `team/model`, `team/model@prod`) become resource names."""
    if resource and not resource.startswith("namespaces/"):
        parts = resource.split("/")
        if len(parts) == 1:
            resource = _namespace(resource)
        elif len(parts) == 2 and "@" not in resource:
            resource = str(names.parse_model_ref(resource, "resource"))
        else:
            resource = str(names.parse_version_ref(resource, "resource"))
    return events.EventFilter(
        namespace=_namespace(namespace) if namespace else "",
        model=str(names.parse_model_ref(model)) if model else "",
        resource=resource,
        actions=events.action_names(actions),
    )


def _version_name(version: str) -> ModelVersionName:
    ref = names.parse_version_ref(version)
    if isinstance(ref, AliasName):
        raise names.InvalidResourceName(
            "version", f"{version!r} is an alias; a version number is needed here"
        )
    return ref


def _has_metadata(draft: model_pb2.ModelVersion) -> bool:
    """True when a push's draft sets anything (an empty lineage or signature is set, yet empty)."""
    return any(
        value.ListFields() if hasattr(value, "ListFields") else value for _, value in draft.ListFields()
    )


def _draft(
    *,
    description: str,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, str] | None,
    lineage: LineageLike | None,
    signature: SignatureLike | None,
) -> model_pb2.ModelVersion:
    return model_pb2.ModelVersion(
        description=description,
        params=_struct(params or {}),
        metrics={key: float(value) for key, value in (metrics or {}).items()},
        tags=dict(tags or {}),
        lineage=_lineage(lineage),
        signature=_signature(signature),
    )
