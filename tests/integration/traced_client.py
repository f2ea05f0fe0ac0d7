"""An application that traces its own work and pushes a model with the SDK: the client side of
test_observability_traces (a process of its own, since a tracer provider is set once per process).

`python -m tests.integration.traced_client MODEL DIRECTORY` with MODELREG_METADATA_ADDR,
MODELREG_ARTIFACT_ADDR, MODELREG_TOKEN and OTEL_EXPORTER_OTLP_ENDPOINT set; prints the trace id.
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

CLIENT_SERVICE_NAME = "traced-client"


def main() -> None:
    model, directory = sys.argv[1], sys.argv[2]
    provider = TracerProvider(resource=Resource({"service.name": CLIENT_SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # The SDK opens its channels after the provider is set, so its calls carry the context.
    from modelreg import Client  # noqa: PLC0415

    with trace.get_tracer("traced-client").start_as_current_span("push a model") as span:
        with Client() as registry:
            registry.push(model, directory)
        print(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()


if __name__ == "__main__":
    main()
