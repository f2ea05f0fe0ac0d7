"""The metrics every service exposes: its RPCs and its stores.

Label values come from fixed sets (the methods the server registered, status code names, store
names), never from what a caller sends, so the number of series is bounded. The interceptor
holds one `MethodMetrics` per method with its label children resolved once: a call costs a few
increments, not a label lookup or a new label set (docs/observability.md has the measured cost).
Process metrics (`process_*`, `python_gc_*`, `python_info`) come with prometheus-client's
default registry.
"""

from __future__ import annotations

import grpc
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from modelreg_common.observability.buckets import DURATION_BUCKETS
from modelreg_common.outages import store_outage

RPC_REQUESTS = Counter(
    "modelreg_rpc_requests",
    "RPCs handled, by final status code; a stream counts once, when it ends",
    ["service", "method", "code"],
)
RPC_DURATION = Histogram(
    "modelreg_rpc_duration_seconds",
    "Time from the call's arrival to its final status (a stream's whole life)",
    ["service", "method", "code"],
    buckets=DURATION_BUCKETS,
)
RPC_IN_FLIGHT = Gauge("modelreg_rpc_in_flight", "RPCs being handled now", ["service", "method"])
RPC_RECEIVED_BYTES = Counter(
    "modelreg_rpc_received_bytes",
    "Request message bytes received (protobuf wire size)",
    ["service", "method"],
)
RPC_SENT_BYTES = Counter(
    "modelreg_rpc_sent_bytes", "Response message bytes sent (protobuf wire size)", ["service", "method"]
)

# The stores: "database" (MongoDB-wire) and "object_storage" (S3), as store_health names them.
DATABASE = "database"
OBJECT_STORAGE = "object_storage"
STORE_ERRORS = Counter(
    "modelreg_store_errors",
    "Failed store operations: unreachable, timeout, unavailable (S3 5xx/SlowDown) or other",
    ["store", "kind"],
)
STORE_UP = Gauge(
    "modelreg_store_up", "1 while the store's health probe succeeds, 0 while it fails", ["store"]
)

UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
OTHER = "other"
STORE_ERROR_KINDS = (UNREACHABLE, TIMEOUT, UNAVAILABLE, OTHER)


def declare_store(store: str) -> None:
    """Let the store's series exist at 0 before anything fails (so `rate()` and alerts see them)."""
    for kind in STORE_ERROR_KINDS:
        STORE_ERRORS.labels(store, kind)


def count_database_error(exc: BaseException) -> bool:
    """Count `exc` if the database caused it (an outage, or another PyMongo error); True if counted."""
    outage = store_outage(exc)
    if outage is not None:
        STORE_ERRORS.labels(DATABASE, TIMEOUT if outage.timeout else UNREACHABLE).inc()
        return True
    if isinstance(exc, PyMongoError):
        STORE_ERRORS.labels(DATABASE, OTHER).inc()
        return True
    return False


class MethodMetrics:
    """The children of one gRPC method's series, resolved once per method (not per call)."""

    __slots__ = ("_finished", "in_flight", "method", "received", "sent", "service")

    def __init__(self, path: str):
        self.service, _, self.method = path.lstrip("/").partition("/")
        self.in_flight = RPC_IN_FLIGHT.labels(self.service, self.method)
        self.received = RPC_RECEIVED_BYTES.labels(self.service, self.method)
        self.sent = RPC_SENT_BYTES.labels(self.service, self.method)
        self._finished: dict[grpc.StatusCode, tuple[Counter, Histogram]] = {}

    def finished(self, code: grpc.StatusCode, seconds: float) -> None:
        children = self._finished.get(code)
        if children is None:
            children = self._finished[code] = (
                RPC_REQUESTS.labels(self.service, self.method, code.name),
                RPC_DURATION.labels(self.service, self.method, code.name),
            )
        children[0].inc()
        children[1].observe(seconds)


_METHODS: dict[str, MethodMetrics] = {}


def method_metrics(path: str) -> MethodMetrics:
    """The metrics of the method at `path` ("/package.Service/Method"), a method the server serves."""
    metrics = _METHODS.get(path)
    if metrics is None:
        metrics = _METHODS[path] = MethodMetrics(path)
    return metrics
