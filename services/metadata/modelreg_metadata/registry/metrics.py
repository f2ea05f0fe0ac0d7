"""Metrics of model versions: logging points (the version keeps the latest of each as its summary),
reading a metric's history page by page, and comparing versions by metrics and params."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from modelreg_api.errors import InvalidArgument
from modelreg_api.names import ModelVersionName
from modelreg_common import paging

from modelreg_metadata import domain
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import now
from modelreg_metadata.domain import ComparedRow, MetricPoint, ModelVersion
from modelreg_metadata.filtering import Path
from modelreg_metadata.registry import idempotency
from modelreg_metadata.store import ModelStore, RequestStore, VersionStore

MAX_COMPARED_VERSIONS = 100
DEFAULT_HISTORY_PAGE = 1000
MAX_HISTORY_PAGE = 10_000


class Metrics:
    def __init__(self, models: ModelStore, versions: VersionStore, requests: RequestStore):
        self._requests = requests
        self._models = models
        self._versions = versions

    async def log_metrics(
        self, name: ModelVersionName, points: list[MetricPoint], request_id: str
    ) -> ModelVersion:
        domain.check_metric_points(points)
        received = now()
        stamped = [p if p.time else replace(p, time=received) for p in points]
        request_key = idempotency.request_key("LogMetrics", str(name), request_id) if request_id else ""
        await self._models.get_model(name.model_name)
        await idempotency.claim(self._requests, request_key, idempotency.fingerprint(points), request_id)
        summary_keys = {p.key for p in stamped}
        current = await self._versions.get_version(name)
        if len(set(current.metrics) | summary_keys) > domain.MAX_METRICS:
            raise InvalidArgument("points", f"a version holds at most {domain.MAX_METRICS} distinct metrics")
        _, after = await self._versions.log_metrics(
            name, stamped, request_key, changes.event(Action.MODEL_VERSION_METRICS_LOGGED)
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
