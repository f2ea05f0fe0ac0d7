"""A span per MongoDB command made inside a traced call.

PyMongo announces every command to the `monitoring` listeners, its asyncio client as well as the
synchronous one, on the task that runs the command, so the current span there is the RPC's. The
listener is registered only when tracing is on (tracing.configure_tracing), before any client is
created. (opentelemetry-instrumentation-pymongo is the same idea; this one adds no dependency
and leaves the health probe's pings and background work untraced.)
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from pymongo import monitoring


class MongoCommandSpans(monitoring.CommandListener):
    def __init__(self, tracer: Tracer):
        self._tracer = tracer
        self._open: dict[tuple[Any, int, int | None], Span] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not trace.get_current_span().get_span_context().is_valid:
            return
        operation = event.command_name
        collection = event.command.get(operation)
        attributes: dict[str, str | int] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": operation,
        }
        name = operation
        if isinstance(collection, str):
            attributes["db.collection.name"] = collection
            name = f"{operation} {collection}"
        host, port = event.connection_id
        attributes["server.address"] = str(host)
        if port is not None:
            attributes["server.port"] = port
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._open[(event.connection_id, event.request_id, event.operation_id)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id, event.operation_id), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id, event.operation_id), None)
        if span is not None:
            code = event.failure.get("codeName") or event.failure.get("code") or "failed"
            span.set_status(Status(StatusCode.ERROR, str(code)[:64]))
            span.end()
