"""`AsyncClient`: the registry for asyncio code. `modelreg.Client` is the same API, blocking.

Models and versions are named the way people type them (`team/model`, `team/model/3`,
`team/model@production`) or by full resource name. Resources come back as the API's protobuf
messages (`modelregistry.v1.model_pb2`), so every field the server sends is there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from google.protobuf import json_format, struct_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from modelreg import names
from modelreg.addresses import ServiceAddresses
from modelreg.connection import Connection
from modelreg.downloads import Downloader
from modelreg.errors import AlreadyExists, FailedPrecondition, NotFound
from modelreg.local_files import describe_files
from modelreg.names import AliasName, ModelName, ModelVersionName
from modelreg.progress import NoProgress, TransferProgress
from modelreg.pulls import pull_files
from modelreg.pushes import PushJournal, resume_or_create, upload_missing
from modelreg.results import PullResult, PushResult
from modelreg.settings import ClientSettings
from modelreg.uploads import Uploader

LineageLike = model_pb2.Lineage | Mapping[str, Any]
SignatureLike = model_pb2.Signature | Mapping[str, Any]


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
    `MODELREG_ARTIFACT_ADDR`, `MODELREG_ACTOR`, `MODELREG_CACHE_DIR`), then from the defaults
    that `make run` uses. Pass `settings` for full control (retries, deadlines, parallelism).
    """

    def __init__(
        self,
        *,
        metadata_addr: str | None = None,
        artifact_addr: str | None = None,
        actor: str | None = None,
        timeout: float | None = None,
        cache_dir: str | Path | None = None,
        parallel_files: int | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        base = settings or ClientSettings.from_environment()
        self.settings = replace(
            base,
            addresses=ServiceAddresses(
                metadata=metadata_addr or base.addresses.metadata,
                artifacts=artifact_addr or base.addresses.artifacts,
            ),
            actor=base.actor if actor is None else actor,
            timeout=base.timeout if timeout is None else timeout,
            cache_dir=base.cache_dir if cache_dir is None else Path(cache_dir).expanduser(),
            parallel_files=base.parallel_files if parallel_files is None else max(1, parallel_files),
        )
        self._connection = Connection(self.settings)
        self._uploader = Uploader(self._connection)
        self._downloader = Downloader(self._connection)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._connection.close()

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

    async def list_versions(self, model: str, *, page_size: int = 0) -> AsyncIterator[model_pb2.ModelVersion]:
        """Every version of a model, oldest first, fetched a page at a time."""
        parent = str(names.parse_model_ref(model))
        pages = self._connection.pages(
            self._connection.metadata.ListModelVersions,
            lambda token: md.ListModelVersionsRequest(parent=parent, page_size=page_size, page_token=token),
        )
        async for page in pages:
            for version in page.model_versions:
                yield version

    async def seal_version(self, version: str, *, etag: str = "") -> model_pb2.ModelVersion:
        """Freeze a PENDING version's manifest and lineage (state READY); sealing twice is a no-op."""
        name = _version_name(version)
        return await self._connection.unary(
            self._connection.metadata.SealModelVersion, md.SealModelVersionRequest(name=str(name), etag=etag)
        )

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
    ) -> PushResult:
        """Register a file or a directory as a new, sealed version of `model`.

        Hashes the files, creates the version (and the model, unless `create_model` is False),
        uploads the files in parallel, seals the version and points `alias` at it. Running the
        same push again after an interruption continues the version it had started.
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
        progress = progress or NoProgress()
        files = await describe_files(Path(path), self.settings.parallel_files, progress)
        if create_model:
            await self.ensure_model(str(name))
        journal = PushJournal(self.settings.cache_dir / "pushes")
        key = journal.key(name, draft, files)
        version, resumed = await resume_or_create(
            journal,
            key,
            files,
            get_version=self.get_version,
            create_version=lambda request_id: self._create_version(name, draft, request_id),
        )
        transferred = await upload_missing(
            self._uploader,
            version,
            files,
            parallel=self.settings.parallel_files,
            progress=progress,
        )
        version = await self.seal_version(version.name)
        if alias is not None:
            await self.set_alias(str(name), alias, version.number)
            version = await self.get_version(version.name)
        journal.remove(key)
        return PushResult(version, transferred, alias or "", resumed)

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

    # Files

    async def pull(
        self,
        version: str,
        destination: str | Path,
        *,
        use_cache: bool = True,
        copy: bool = False,
        allow_pending: bool = False,
        progress: TransferProgress | None = None,
    ) -> PullResult:
        """Download every file of a version into `destination`, each verified by SHA-256.

        An alias is resolved once, so all files come from the same version even if the alias
        moves meanwhile. Blobs already in the local cache are not transferred again; files are
        hard links into the cache (read-only) unless `copy` is set. With `use_cache=False` the
        bytes are staged inside `destination` and nothing is kept elsewhere.
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
            parallel=self.settings.parallel_files,
            progress=progress or NoProgress(),
        )


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _namespace(namespace: str) -> str:
    if namespace.startswith("namespaces/"):
        return str(names.parse_namespace_name(namespace, "namespace"))
    return str(names.NamespaceName(names.check_namespace_id(namespace, "namespace")))


def _version_name(version: str) -> ModelVersionName:
    ref = names.parse_version_ref(version)
    if isinstance(ref, AliasName):
        raise names.InvalidResourceName(
            "version", f"{version!r} is an alias; a version number is needed here"
        )
    return ref


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
