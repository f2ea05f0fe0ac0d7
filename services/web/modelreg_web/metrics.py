"""The web UI's Prometheus metrics (docs/observability.md lists them), served on a port of its own.

Requests are labelled by the route's template (`/n/{ns}/m/{model}`), never the path a browser
asked for, so the number of series is bounded by the routes, whatever is requested: a path no
route matches is `unmatched`, a method outside the HTTP ones `other`. A request counts once, when
its response ends (an event stream when it closes, a download after its last byte); a request
whose handler failed before answering counts as the 500 the server sends instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from modelreg_common.observability.buckets import DURATION_BUCKETS
from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "modelreg_http_requests",
    "HTTP requests answered, by route template, method and status code",
    ["route", "method", "code"],
)
HTTP_DURATION = Histogram(
    "modelreg_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte (an event stream's whole life)",
    ["route", "method", "code"],
    buckets=DURATION_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "modelreg_http_requests_in_flight", "HTTP requests being answered now (open event streams too)"
)
EVENT_STREAMS = Gauge("modelreg_web_event_streams_open", "Live activity feeds (Server-Sent Events) open now")
DOWNLOAD_BYTES = Counter(
    "modelreg_web_download_bytes",
    "File content sent to browsers in downloads (relayed from the artifact service)",
)


def route_templates(routes: Iterable[BaseRoute]) -> dict[object, str]:
    """Each route's endpoint -> its template: the router leaves the matched endpoint in the scope."""
    templates: dict[object, str] = {}
    for route in routes:
        if isinstance(route, Route):
            templates[route.endpoint] = route.path
        elif isinstance(route, Mount):
            templates[route.app] = f"{route.path}/{{path}}"
    return templates


class RequestMetrics:
    """ASGI middleware counting and timing each HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, templates: dict[object, str]) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the handler fails before its response starts

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, noting_status)
        finally:
            HTTP_IN_FLIGHT.dec()
            # The router updated `scope` in place with the endpoint it matched (none: no route).
            route = self.templates.get(scope.get("endpoint"), UNMATCHED)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            children = _children(route, method, status)
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


# A label set's children, resolved once (as the services' interceptor does): a request then costs
# a dictionary lookup, not a label lookup. Bounded as the labels are.
_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _children(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    children = _CHILDREN.get(key)
    if children is None:
        labels = (route, method, str(status))
        children = _CHILDREN[key] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
    return children
