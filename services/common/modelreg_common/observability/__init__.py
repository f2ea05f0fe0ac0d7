"""Metrics and traces of a service process (docs/observability.md lists every name).

- metrics.py: the metrics both services share (RPCs, stores), with the per-method children the
  interceptor caches so a call allocates no label set;
- exposition.py: `/metrics` on a port of its own (MODELREG_METRICS_ADDR);
- tracing.py: OpenTelemetry, set up only when the OTEL_* variables ask for an exporter: server
  spans per RPC, W3C trace context from the caller, trace ids in the logs;
- mongo_spans.py: a span per MongoDB command made inside a traced call.
"""
