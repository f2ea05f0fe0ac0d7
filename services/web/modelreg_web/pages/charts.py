"""Chart data as JSON, fetched by the pages' script after the page itself has arrived.

Metric histories are the heaviest reads a page could make (the metadata service builds every
point: about 0.2 s for 5,000 points on the local stack, 1.3-1.5 s for ten such histories at
once), so pages never wait for them: the version and compare pages render at once with empty
figures, and `static/charts.js` fills each from these endpoints.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelreg_web import present
from modelreg_web.pages.browse import query
from modelreg_web.pages.compare import compared_numbers
from modelreg_web.pages.version import HISTORY_POINTS, version_number
from modelreg_web.views import PageError, Visit

MAX_METRIC_CHARS = 256


def _metric(request: Request) -> str:
    metric = query(request, "metric")
    if not metric or len(metric) > MAX_METRIC_CHARS:
        raise PageError(400, "No metric", "Name the metric: ?metric=<key>.")
    return metric


async def version_history(request: Request) -> Response:
    """`?metric=`: the history of one metric of the version, by step."""
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    metric = _metric(request)
    ref = f"{ns}/{model_id}/{version_number(request)}"
    points = await visit.client.metric_history(ref, metric, limit=HISTORY_POINTS)
    series = [{"name": metric, "points": [[p.step, present.finite(p.value)] for p in points]}]
    return JSONResponse(
        {"title": metric, "x": "step", "series": series}, headers={"Cache-Control": "no-store"}
    )


async def compare_history(request: Request) -> Response:
    """`?v=1&v=2...&metric=`: one metric's histories of 2-10 versions, one series each."""
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    metric = _metric(request)
    numbers = compared_numbers(request)
    histories = await asyncio.gather(
        *(visit.client.metric_history(f"{ns}/{model_id}/{n}", metric, limit=HISTORY_POINTS) for n in numbers)
    )
    series = [
        {"name": f"v{n}", "points": [[p.step, present.finite(p.value)] for p in points]}
        for n, points in zip(numbers, histories, strict=True)
    ]
    return JSONResponse(
        {"title": metric, "x": "step", "series": series}, headers={"Cache-Control": "no-store"}
    )
