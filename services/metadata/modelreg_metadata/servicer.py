"""gRPC MetadataService: parses names, translates messages, delegates to the Registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2
from modelreg_api import headers, names
from modelreg_api.errors import InvalidArgument
from modelreg_common.access.decisions import current_access
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as pb
from modelregistry.v1 import metadata_service_pb2_grpc as pb_grpc

from modelreg_metadata import convert
from modelreg_metadata.audit.events import EventScope
from modelreg_metadata.audit.trail import AuditTrail
from modelreg_metadata.registry import Registry

Context = grpc.aio.ServicerContext[Any, Any]

ALL_MODELS = "-"  # AIP-159: `namespaces/{ns}/models/-` reads across the models of a namespace


def _version_parent(parent: str) -> names.ModelName | names.NamespaceName:
    parts = parent.split("/")
    if len(parts) == 4 and parts[2] == "models" and parts[3] == ALL_MODELS:
        return names.parse_namespace_name("/".join(parts[:2]), "parent")
    return names.parse_model_name(parent, "parent")


def _time(message: Any, field: str) -> datetime | None:
    return convert.time_from_proto(getattr(message, field), field) if message.HasField(field) else None


def _scope(request: pb.ListEventsRequest | pb.WatchEventsRequest) -> EventScope:
    """The events asked for, within the namespaces the caller can read (AIP-211: the others are
    as if they had no events)."""
    return EventScope.of(
        visible_namespaces=current_access().readable_namespaces(),
        namespace=names.parse_namespace_name(request.namespace, "namespace") if request.namespace else None,
        model=names.parse_model_name(request.model, "model") if request.model else None,
        resource=request.resource,
        actions=list(request.actions),
        actor=request.actor if isinstance(request, pb.ListEventsRequest) else "",
        start_time=_time(request, "start_time") if isinstance(request, pb.ListEventsRequest) else None,
        end_time=_time(request, "end_time") if isinstance(request, pb.ListEventsRequest) else None,
    )


def _version_or_alias(name: str) -> names.ModelVersionName | names.AliasName:
    return names.parse_version_reference(name, "name")


class MetadataServicer(pb_grpc.MetadataServiceServicer):
    def __init__(self, registry: Registry, trail: AuditTrail):
        self._registry = registry
        self._trail = trail

    # Namespaces

    async def CreateNamespace(
        self, request: pb.CreateNamespaceRequest, context: Context
    ) -> model_pb2.Namespace:
        names.check_namespace_id(request.namespace_id, "namespace_id")
        await current_access().require(request.namespace_id, hidden=False)
        draft = convert.namespace_draft(names.NamespaceName(request.namespace_id), request.namespace)
        namespace = await self._registry.namespaces.create_namespace(
            request.namespace_id, draft, request.request_id
        )
        return convert.namespace_to_proto(namespace)

    async def GetNamespace(self, request: pb.GetNamespaceRequest, context: Context) -> model_pb2.Namespace:
        name = names.parse_namespace_name(request.name, "name")
        await current_access().require(name)
        namespace = await self._registry.namespaces.get_namespace(name)
        return convert.namespace_to_proto(namespace)

    async def ListNamespaces(
        self, request: pb.ListNamespacesRequest, context: Context
    ) -> pb.ListNamespacesResponse:
        found, token = await self._registry.namespaces.list_namespaces(request.page_size, request.page_token)
        access = current_access()
        visible = [n for n in found if access.sees(n.name.namespace)]  # pages may come out short
        return pb.ListNamespacesResponse(
            namespaces=[convert.namespace_to_proto(n) for n in visible], next_page_token=token
        )

    async def UpdateNamespace(
        self, request: pb.UpdateNamespaceRequest, context: Context
    ) -> model_pb2.Namespace:
        name = names.parse_namespace_name(request.namespace.name, "namespace.name")
        await current_access().require(name)
        draft = convert.namespace_draft(name, request.namespace)
        namespace = await self._registry.namespaces.update_namespace(
            draft, list(request.update_mask.paths), convert.populated_fields(request.namespace)
        )
        return convert.namespace_to_proto(namespace)

    # Models

    async def CreateModel(self, request: pb.CreateModelRequest, context: Context) -> model_pb2.Model:
        parent = names.parse_namespace_name(request.parent, "parent")
        names.check_model_id(request.model_id, "model_id")
        await current_access().require(parent)
        draft = convert.model_draft(names.ModelName(parent.namespace, request.model_id), request.model)
        model = await self._registry.models.create_model(parent, request.model_id, draft, request.request_id)
        return convert.model_to_proto(model)

    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> model_pb2.Model:
        name = names.parse_model_name(request.name, "name")
        await current_access().require(name)
        return convert.model_to_proto(await self._registry.models.get_model(name))

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        parent = names.parse_namespace_name(request.parent, "parent")
        if not await current_access().can_read(parent.namespace):
            return pb.ListModelsResponse()  # as for a namespace that does not exist
        models, token = await self._registry.models.list_models(
            parent,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
            show_deleted=request.show_deleted,
        )
        return pb.ListModelsResponse(
            models=[convert.model_to_proto(m) for m in models], next_page_token=token
        )

    async def UpdateModel(self, request: pb.UpdateModelRequest, context: Context) -> model_pb2.Model:
        name = names.parse_model_name(request.model.name, "model.name")
        await current_access().require(name)
        model = await self._registry.models.update_model(
            convert.model_draft(name, request.model),
            list(request.update_mask.paths),
            convert.populated_fields(request.model),
        )
        return convert.model_to_proto(model)

    async def DeleteModel(self, request: pb.DeleteModelRequest, context: Context) -> model_pb2.Model:
        name = names.parse_model_name(request.name, "name")
        await current_access().require(name)
        model = await self._registry.models.delete_model(name, request.etag)
        return convert.model_to_proto(model)

    async def UndeleteModel(self, request: pb.UndeleteModelRequest, context: Context) -> model_pb2.Model:
        name = names.parse_model_name(request.name, "name")
        await current_access().require(name)
        model = await self._registry.models.undelete_model(name)
        return convert.model_to_proto(model)

    # Versions

    async def CreateModelVersion(
        self, request: pb.CreateModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        parent = names.parse_model_name(request.parent, "parent")
        await current_access().require(parent)
        draft = convert.new_version(request.model_version)
        version = await self._registry.versions.create_version(parent, draft, request.request_id)
        return convert.version_to_proto(version)

    async def GetModelVersion(
        self, request: pb.GetModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        version = await self._registry.versions.get_version(name)
        return convert.version_to_proto(version)

    async def ListModelVersions(
        self, request: pb.ListModelVersionsRequest, context: Context
    ) -> pb.ListModelVersionsResponse:
        parent = _version_parent(request.parent)
        if isinstance(parent, names.NamespaceName) and not await current_access().can_read(parent.namespace):
            return pb.ListModelVersionsResponse()  # as for a namespace that does not exist
        await current_access().require(parent)
        versions, token = await self._registry.versions.list_versions(
            parent,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
            show_deleted=request.show_deleted,
        )
        return pb.ListModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in versions], next_page_token=token
        )

    async def UpdateModelVersion(
        self, request: pb.UpdateModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version.name, "model_version.name")
        await current_access().require(name)
        version = await self._registry.versions.update_version(
            convert.version_draft(name, request.model_version),
            list(request.update_mask.paths),
            convert.populated_fields(request.model_version),
        )
        return convert.version_to_proto(version)

    async def DeleteModelVersion(
        self, request: pb.DeleteModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(await self._registry.versions.delete_version(name, request.etag))

    async def UndeleteModelVersion(
        self, request: pb.UndeleteModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(await self._registry.versions.undelete_version(name))

    async def PurgeModelVersion(
        self, request: pb.PurgeModelVersionRequest, context: Context
    ) -> empty_pb2.Empty:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        await self._registry.versions.purge_version(name, request.etag)
        return empty_pb2.Empty()

    async def ArchiveModelVersion(
        self, request: pb.ArchiveModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(await self._registry.versions.archive_version(name, request.etag))

    async def UnarchiveModelVersion(
        self, request: pb.UnarchiveModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(await self._registry.versions.unarchive_version(name, request.etag))

    async def SealModelVersion(
        self, request: pb.SealModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(await self._registry.versions.seal_version(name, request.etag))

    # Aliases

    async def SetAlias(self, request: pb.SetAliasRequest, context: Context) -> model_pb2.Alias:
        alias = names.parse_alias_name(request.name, "name")
        await current_access().require(alias)
        target = names.parse_model_version_name(request.model_version, "model_version")
        return convert.alias_to_proto(await self._registry.aliases.set_alias(alias, target, request.etag))

    async def GetAlias(self, request: pb.GetAliasRequest, context: Context) -> model_pb2.Alias:
        name = names.parse_alias_name(request.name, "name")
        await current_access().require(name)
        alias = await self._registry.aliases.get_alias(name)
        return convert.alias_to_proto(alias)

    async def ListAliases(self, request: pb.ListAliasesRequest, context: Context) -> pb.ListAliasesResponse:
        parent = names.parse_model_name(request.parent, "parent")
        await current_access().require(parent)
        aliases, token = await self._registry.aliases.list_aliases(
            parent, request.page_size, request.page_token
        )
        return pb.ListAliasesResponse(
            aliases=[convert.alias_to_proto(a) for a in aliases], next_page_token=token
        )

    async def DeleteAlias(self, request: pb.DeleteAliasRequest, context: Context) -> empty_pb2.Empty:
        name = names.parse_alias_name(request.name, "name")
        await current_access().require(name)
        await self._registry.aliases.delete_alias(name, request.etag)
        return empty_pb2.Empty()

    async def GetModelVersionByAlias(
        self, request: pb.GetModelVersionByAliasRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_alias_name(request.name, "name")
        await current_access().require(name)
        version = await self._registry.versions.get_version_by_alias(name)
        return convert.version_to_proto(version)

    # Metrics and comparison

    async def LogMetrics(self, request: pb.LogMetricsRequest, context: Context) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.model_version, "model_version")
        await current_access().require(name)
        points = [convert.point_from_proto(p, f"points[{i}]") for i, p in enumerate(request.points)]
        return convert.version_to_proto(
            await self._registry.metrics.log_metrics(name, points, request.request_id)
        )

    async def ListMetricHistory(
        self, request: pb.ListMetricHistoryRequest, context: Context
    ) -> pb.ListMetricHistoryResponse:
        name = names.parse_model_version_name(request.model_version, "model_version")
        await current_access().require(name)
        points, token = await self._registry.metrics.list_metric_history(
            name, request.metric_key, request.page_size, request.page_token
        )
        return pb.ListMetricHistoryResponse(
            points=[convert.point_to_proto(p) for p in points], next_page_token=token
        )

    async def CompareModelVersions(
        self, request: pb.CompareModelVersionsRequest, context: Context
    ) -> pb.CompareModelVersionsResponse:
        parsed = [names.parse_model_version_name(n, f"names[{i}]") for i, n in enumerate(request.names)]
        for name in parsed:
            await current_access().require(name)
        versions, metrics, params = await self._registry.metrics.compare_versions(parsed)
        return pb.CompareModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in versions],
            metrics=convert.rows_to_proto(metrics),
            params=convert.rows_to_proto(params),
        )

    # Review

    async def SubmitModelVersionForReview(
        self, request: pb.SubmitModelVersionForReviewRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        version = await self._registry.reviews.submit_for_review(name, request.comment, request.etag)
        return convert.version_to_proto(version)

    async def ApproveModelVersion(
        self, request: pb.ApproveModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(
            await self._registry.reviews.approve_version(name, request.comment, request.etag)
        )

    async def RejectModelVersion(
        self, request: pb.RejectModelVersionRequest, context: Context
    ) -> model_pb2.ModelVersion:
        name = names.parse_model_version_name(request.name, "name")
        await current_access().require(name)
        return convert.version_to_proto(
            await self._registry.reviews.reject_version(name, request.comment, request.etag)
        )

    # Protected aliases

    async def ProtectAlias(
        self, request: pb.ProtectAliasRequest, context: Context
    ) -> model_pb2.AliasProtection:
        name = names.parse_alias_name(request.protection.name, "protection.name")
        await current_access().require(name)
        protection = convert.protection_from_proto(name, request.protection)
        return convert.protection_to_proto(await self._registry.aliases.protect_alias(protection))

    async def GetAliasProtection(
        self, request: pb.GetAliasProtectionRequest, context: Context
    ) -> model_pb2.AliasProtection:
        name = names.parse_alias_name(request.name, "name")
        await current_access().require(name)
        return convert.protection_to_proto(await self._registry.aliases.get_alias_protection(name))

    async def UnprotectAlias(self, request: pb.UnprotectAliasRequest, context: Context) -> empty_pb2.Empty:
        name = names.parse_alias_name(request.name, "name")
        await current_access().require(name)
        await self._registry.aliases.unprotect_alias(name)
        return empty_pb2.Empty()

    # Audit trail

    async def ListEvents(self, request: pb.ListEventsRequest, context: Context) -> pb.ListEventsResponse:
        events, token = await self._trail.list_events(
            _scope(request),
            after_sequence=request.after_sequence,
            page_size=request.page_size,
            page_token=request.page_token,
            order_by=request.order_by,
        )
        return pb.ListEventsResponse(
            events=[convert.event_to_proto(e) for e in events], next_page_token=token
        )

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[event_pb2.Event]:
        scope = _scope(request)
        start = await self._trail.watch_start(
            after_sequence=request.after_sequence, from_now=request.from_now
        )
        # Sent at once, before any event: a `from_now` watcher that loses the stream before its
        # first event still knows where to resume.
        await context.send_initial_metadata(((headers.WATCH_AFTER_SEQUENCE, str(start)),))
        async for event in self._trail.watch_events(scope, after_sequence=start, from_now=False):
            yield convert.event_to_proto(event)

    async def GetStateAtTime(self, request: pb.GetStateAtTimeRequest, context: Context) -> pb.StateAtTime:
        name = _version_or_alias(request.name)
        await current_access().require(name)
        if not request.HasField("time"):
            raise InvalidArgument("time", "is required")
        moment = convert.time_from_proto(request.time, "time")
        if isinstance(name, names.AliasName):
            alias, last = await self._trail.alias_at(name, moment)
            return pb.StateAtTime(alias=convert.alias_to_proto(alias), as_of=convert.event_to_proto(last))
        version, last = await self._trail.version_at(name, moment)
        return pb.StateAtTime(
            model_version=convert.version_to_proto(version), as_of=convert.event_to_proto(last)
        )
