"""OpenTelemetry SERVER spans for HTTP requests, when the OTEL_* variables turned tracing on.

The same switch as the services' (modelreg_common.observability.tracing): off, this middleware is
not even added. On, each request gets a SERVER span named `<method> <route template>` (the name is
set once the router matched, so it is bounded like the metrics' labels), made current while the
request runs, so the calls the page makes to the services (CLIENT spans of the SDK's channels)
are its children. A browser's `traceparent` is not followed: every page starts its own trace.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelreg_web.metrics import UNMATCHED


class RequestSpans:
    def __init__(self, app: ASGIApp, tracer: Tracer, templates: dict[object, str]) -> None:
        self.app = app
        self.tracer = tracer
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        span = self.tracer.start_span(
            method, kind=SpanKind.SERVER, attributes={"http.request.method": method}
        )
        status = 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, noting_status)
        finally:
            otel_context.detach(token)
            route = self.templates.get(scope.get("endpoint"), UNMATCHED)
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, str(status)))
            span.end()
