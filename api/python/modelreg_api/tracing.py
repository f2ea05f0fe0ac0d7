"""W3C trace context on outgoing calls, when the process has an OpenTelemetry tracer provider.

A channel opened while a provider is configured (an application that set up the OpenTelemetry
SDK; a service whose OTEL_* variables turned tracing on) gets an interceptor that makes a CLIENT
span per call and sends its context as `traceparent`/`tracestate` metadata (the propagators of
OTEL_PROPAGATORS), so the server's span joins the caller's trace. Without a provider, or
without the OpenTelemetry API installed, channels get no interceptor and calls cost nothing
extra. The provider is looked at when the channel opens: set it up before the first call.
"""

from __future__ import annotations

import grpc


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The interceptors a new channel needs: one when a tracer provider is configured, else none."""
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional: only a traced process has it
    except ImportError:
        return []
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return []
    from modelreg_api._trace_interceptor import tracing_interceptors  # noqa: PLC0415

    return tracing_interceptors(provider.get_tracer("modelreg"))
