"""Chart data as JSON, fetched by the pages' script after the page itself has arrived.

Metric histories are the heaviest reads a page could make (the metadata service reads and
builds every logged point), so pages never wait for them: the version and compare pages render
at once with empty figures, and `static/charts.js` fills each from these endpoints.

The answer is made for drawing: each series is two flat arrays (`steps`, `values`), min/max
decimated to the chart's width when longer (`decimation.py`: every peak and dip kept, each
kept point exact). Its validator is the versions' etags (logging a point changes its version's
etag), so a browser that has the chart already gets `304 Not Modified` after one cheap read of
the versions, and the histories are not read again. Nothing is kept in this process.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from modelregistry.v1 import model_pb2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelreg_web import decimation
from modelreg_web.pages.browse import query
from modelreg_web.pages.compare import compared_numbers
from modelreg_web.pages.version import HISTORY_POINTS, version_number
from modelreg_web.views import PageError, Visit

MAX_METRIC_CHARS = 256
# Part of every ETag: a change to the answer's shape or to the decimation must not be
# answered with a browser's copy of the old one.
FORMAT = "columns-1"
# The browser may keep the answer but must ask again each time (the history may grow).
CACHING = "private, no-cache"


def _metric(request: Request) -> str:
    metric = query(request, "metric")
    if not metric or len(metric) > MAX_METRIC_CHARS:
        raise PageError(400, "No metric", "Name the metric: ?metric=<key>.")
    return metric


def _etag(metric: str, versions: Sequence[model_pb2.ModelVersion]) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    for part in (metric, *(f"{v.name} {v.etag}" for v in versions)):
        digest.update(b"\0" + part.encode())
    return f'"{digest.hexdigest()[:32]}"'


def _unchanged(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match", "")
    return etag in (tag.strip().removeprefix("W/") for tag in sent.split(","))


def _series(name: str, points: Sequence[model_pb2.MetricPoint]) -> dict[str, object]:
    drawn = decimation.series([p.step for p in points], [p.value for p in points])
    return {
        "name": name,
        "steps": drawn.steps,
        "values": drawn.values,
        "logged": drawn.logged,
        "decimated": drawn.decimated,
    }


def _chart(metric: str, etag: str, series: list[dict[str, object]]) -> Response:
    return JSONResponse(
        {"title": metric, "x": "step", "series": series},
        headers={"Cache-Control": CACHING, "ETag": etag},
    )


def _not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"Cache-Control": CACHING, "ETag": etag})


async def version_history(request: Request) -> Response:
    """`?metric=`: the history of one metric of the version, by step."""
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    metric = _metric(request)
    ref = f"{ns}/{model_id}/{version_number(request)}"
    # The versions are read before their histories: a point logged in between makes the answer
    # newer than its ETag, never older, and the next visit reads it again.
    etag = _etag(metric, [await visit.client.get_version(ref)])
    if _unchanged(request, etag):
        return _not_modified(etag)
    points = await visit.client.metric_history(ref, metric, limit=HISTORY_POINTS)
    return _chart(metric, etag, [_series(metric, points)])


async def compare_history(request: Request) -> Response:
    """`?v=1&v=2...&metric=`: one metric's histories of 2-10 versions, one series each."""
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    metric = _metric(request)
    numbers = compared_numbers(request)
    refs = [f"{ns}/{model_id}/{n}" for n in numbers]
    etag = _etag(metric, await asyncio.gather(*(visit.client.get_version(ref) for ref in refs)))
    if _unchanged(request, etag):
        return _not_modified(etag)
    histories = await asyncio.gather(
        *(visit.client.metric_history(ref, metric, limit=HISTORY_POINTS) for ref in refs)
    )
    series = [_series(f"v{n}", points) for n, points in zip(numbers, histories, strict=True)]
    return _chart(metric, etag, series)
