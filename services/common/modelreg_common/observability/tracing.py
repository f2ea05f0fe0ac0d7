"""OpenTelemetry traces, off unless the standard OTEL_* variables ask for an exporter.

On when OTEL_TRACES_EXPORTER names exporters (`otlp`, `console`, or any installed exporter's
entry-point name such as `otlp_proto_http`), or when it is unset and an OTLP endpoint is
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then `otlp`. Off otherwise,
with OTEL_TRACES_EXPORTER=none, or with OTEL_SDK_DISABLED=true. The OpenTelemetry spec's default
is `otlp` even with nothing set; a service would then send to localhost:4317 and log a failed
export on every machine without a collector, so ours wants a sign of one.

Off costs nothing: the SDK is not imported, no span or context is made per call, the logs carry
no trace ids; the interceptor and the store wrappers test one module attribute.

On, the SDK reads the rest of the standard variables itself: OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (the service name defaults to the program's, e.g. `modelreg-metadata`),
OTEL_TRACES_SAMPLER/_ARG (default `parentbased_always_on`: the caller's sampling decision holds),
OTEL_EXPORTER_OTLP_* (endpoint, protocol `grpc` or `http/protobuf`, headers, certificates),
OTEL_BSP_* (batching) and OTEL_PROPAGATORS (W3C `tracecontext,baggage` by default).

What is traced: a SERVER span per RPC, child of the caller's W3C trace context; CLIENT spans for
this service's calls to the other service (modelreg_api.tracing, which also injects the
context); a span per MongoDB command (mongo_spans.py) and per S3 operation made inside a traced
call. Background work (the event relay, sweeps, health probes) starts no traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from importlib.metadata import entry_points
from typing import Any

import grpc
import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from modelreg_common.config import ConfigError, parse_flag

log = structlog.get_logger("modelreg.tracing")

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
# Server-side codes that mean the service failed (OpenTelemetry's gRPC conventions); the others
# (NOT_FOUND, INVALID_ARGUMENT...) are the caller's business and leave the span's status unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# The service's tracer while tracing is on; None while it is off (the one test on the hot path).
_tracer: Tracer | None = None


def tracer() -> Tracer | None:
    return _tracer


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The trace exporters the environment asks for; empty: tracing is off."""
    if parse_flag(env.get("OTEL_SDK_DISABLED", "")):
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        return ["otlp"] if endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() else []
    return [name for name in (part.strip().lower() for part in raw.split(",")) if name and name != "none"]


def _entry_point_name(name: str, env: Mapping[str, str]) -> str:
    if name != "otlp":
        return name
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "grpc"
    )
    if protocol not in _OTLP_BY_PROTOCOL:
        raise ConfigError(
            [f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol[:32]!r} is not one of grpc, http/protobuf"]
        )
    return _OTLP_BY_PROTOCOL[protocol]


class Tracing:
    """What `configure_tracing` set up; `shutdown` exports the spans still batched."""

    def __init__(self, exporters: list[str], shutdown: Any = None):
        self.exporters = exporters
        self._shutdown = shutdown

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    def shutdown(self) -> None:
        global _tracer  # noqa: PLW0603 - the one switch the hot path reads
        _tracer = None
        if self._shutdown is not None:
            self._shutdown()


def configure_tracing(env: Mapping[str, str], service_name: str) -> Tracing:
    """Set up the SDK when the environment asks for traces (see the module's docstring).

    Raises ConfigError for an exporter or protocol that does not exist. Called once, before the
    service creates its database clients and channels (they pick the instrumentation up then).
    """
    global _tracer  # noqa: PLW0603 - the one switch the hot path reads
    names = exporter_names(env)
    if not names:
        return Tracing([])
    # Imported here: a service without tracing never loads the SDK.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from pymongo import monitoring  # noqa: PLC0415

    from modelreg_common.observability.mongo_spans import MongoCommandSpans  # noqa: PLC0415

    exporters = []
    for name in names:
        found = entry_points(group=_EXPORTER_GROUP, name=_entry_point_name(name, env))
        if not found:
            raise ConfigError(
                [f"OTEL_TRACES_EXPORTER: no trace exporter {name[:32]!r} is installed (otlp, console, none)"]
            )
        exporters.append(next(iter(found)).load()())
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("modelreg")
    monitoring.register(MongoCommandSpans(_tracer))
    return Tracing(names, provider.shutdown)


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's trace and span ids, next to the request id."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event["trace_id"] = format(span_context.trace_id, "032x")
        event["span_id"] = format(span_context.span_id, "016x")
    return event


class ServerSpan:
    """The SERVER span of one RPC, current (so store spans and outgoing calls are its children)
    from `start` to `end`; both run in the call's task."""

    __slots__ = ("_span", "_token")

    def __init__(self, active: Tracer, service: str, method: str, metadata: Mapping[str, str]):
        parent = propagate.extract(metadata)
        self._span = active.start_span(
            f"{service}/{method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span, parent))

    def end(self, code: grpc.StatusCode) -> None:
        self._span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_ERRORS:
            self._span.set_status(Status(StatusCode.ERROR, code.name))
        self._span.end()
        otel_context.detach(self._token)


@contextlib.contextmanager
def store_span(name: str, attributes: Mapping[str, str]) -> Iterator[None]:
    """A CLIENT span around a store operation made inside a traced call (nothing otherwise)."""
    active = _tracer
    if active is None or not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    with active.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes)):
        yield
