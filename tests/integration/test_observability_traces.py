"""OpenTelemetry traces across the SDK, the artifact service, the metadata service and the stores,
exported over OTLP to a collector in this test; and nothing at all without OTEL_* variables.

The traced services are a pair of their own (a metadata and an artifact process on a database of
their own, on the session's stores); the client is a program of its own (traced_client.py), since
a tracer provider is set once per process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from modelreg_api import headers
from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV
from modelreg_local.stack import ARTIFACT_SERVICE, METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.trace.v1 import trace_pb2
from pymongo import MongoClient

from tests.conftest import ReplicaFactory
from tests.integration.traced_client import CLIENT_SERVICE_NAME
from tests.support import ACTOR, bearer, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PATIENCE_SECONDS = 20.0
SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class ExportedSpan:
    service: str  # the resource's service.name
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value") or "string_value") for pair in pairs}


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.endpoint = ""
        self._spans: list[ExportedSpan] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - the generated servicer's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = [
            ExportedSpan(
                str(_attributes(resource_spans.resource.attributes).get("service.name")),
                span.name,
                span.kind,
                span.trace_id.hex(),
                span.span_id.hex(),
                span.parent_span_id.hex(),
                _attributes(span.attributes),
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self._spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, trace_id: str) -> list[ExportedSpan]:
        with self._lock:
            return [span for span in self._spans if span.trace_id == trace_id]

    def services(self) -> set[str]:
        with self._lock:
            return {span.service for span in self._spans}


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    receiver = Collector()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    receiver.endpoint = f"http://127.0.0.1:{port}"
    yield receiver
    server.stop(0)


@dataclass
class TracedPair:
    metadata: ServiceProcess
    artifacts: ServiceProcess
    admin_token: str


@pytest.fixture(scope="module")
def traced(stack: LocalStack, collector: Collector) -> Iterator[TracedPair]:
    """Both services exporting traces to `collector`, on a database of their own."""
    assert stack.metadata is not None
    assert stack.artifacts is not None
    database = unique("traced").replace("-", "_")
    metadata_addr, artifact_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon, the test waits for it
        "MODELREG_MONGODB_DATABASE": database,
    }
    metadata = ServiceProcess(
        "metadata-traced",
        module="modelreg_metadata",
        service=METADATA_SERVICE,
        address=metadata_addr,
        env={**stack.metadata.env, METADATA_ADDR_ENV: metadata_addr, **otel},
        log_dir=stack.log_dir,
    )
    artifacts = ServiceProcess(
        "artifacts-traced",
        module="modelreg_artifacts",
        service=ARTIFACT_SERVICE,
        address=artifact_addr,
        env={
            **stack.artifacts.env,
            METADATA_ADDR_ENV: metadata_addr,
            ARTIFACT_ADDR_ENV: artifact_addr,
            **otel,
        },
        log_dir=stack.log_dir,
    )
    try:
        for service in (metadata, artifacts):
            service.start()
            service.wait_healthy()
        yield TracedPair(metadata, artifacts, stack.admin_token())
    finally:
        for service in (artifacts, metadata):
            service.stop()
        client: MongoClient[dict[str, Any]] = MongoClient(stack.metadata.env["MODELREG_MONGODB_URI"])
        with client:
            client.drop_database(database)


def _log_records(service: ServiceProcess) -> list[dict[str, Any]]:
    records = []
    for line in service.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


async def _push_traced(traced: TracedPair, collector: Collector, tmp_path: Path) -> str:
    """Push a one-file model with the traced client program; returns its trace id."""
    namespace = unique("traced")
    async with grpc.aio.insecure_channel(traced.metadata.address) as channel:
        await metadata_service_pb2_grpc.MetadataServiceStub(channel).CreateNamespace(
            md.CreateNamespaceRequest(namespace_id=namespace), metadata=bearer(traced.admin_token)
        )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(os.urandom(100_000))
    env = {
        **os.environ,
        METADATA_ADDR_ENV: traced.metadata.address,
        ARTIFACT_ADDR_ENV: traced.artifacts.address,
        "MODELREG_TOKEN": traced.admin_token,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
    }
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.traced_client", f"{namespace}/model", str(model_dir)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout.split()[-1]


def _parent(spans: list[ExportedSpan], span: ExportedSpan) -> ExportedSpan | None:
    return next((candidate for candidate in spans if candidate.span_id == span.parent_id), None)


def _store_of(span: ExportedSpan) -> str:
    if span.attributes.get("db.system.name") == "mongodb":
        return "mongodb"
    return "s3" if span.attributes.get("rpc.service") == "S3" else ""


def _hops(spans: list[ExportedSpan]) -> set[tuple[str, str]]:
    """(caller, callee) for every SERVER span whose parent is a CLIENT span of another service."""
    hops = set()
    for span in spans:
        parent = _parent(spans, span)
        if span.kind == SERVER and parent is not None and parent.kind == CLIENT:
            hops.add((parent.service, span.service))
    return hops


async def test_one_trace_follows_a_push_from_the_sdk_through_both_services_to_the_stores(
    traced: TracedPair, collector: Collector, tmp_path: Path
) -> None:
    trace_id = await _push_traced(traced, collector, tmp_path)
    deadline = time.monotonic() + PATIENCE_SECONDS
    wanted = {
        (CLIENT_SERVICE_NAME, "modelreg-artifacts"),
        (CLIENT_SERVICE_NAME, "modelreg-metadata"),
        ("modelreg-artifacts", "modelreg-metadata"),
    }
    while True:
        spans = collector.spans(trace_id)
        stores = {(span.service, store) for span in spans if (store := _store_of(span))}
        if (wanted <= _hops(spans) and len(stores) == 3) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert wanted <= _hops(spans)
    assert stores == {
        ("modelreg-metadata", "mongodb"),
        ("modelreg-artifacts", "mongodb"),
        ("modelreg-artifacts", "s3"),
    }
    # Store spans are children of the service's RPC spans, never roots of traces of their own.
    for span in spans:
        if span.service != CLIENT_SERVICE_NAME:
            assert _parent(spans, span) is not None, span
    upload = next(s for s in spans if s.kind == SERVER and s.service == "modelreg-artifacts")
    assert upload.attributes["rpc.system"] == "grpc"
    assert upload.attributes["rpc.grpc.status_code"] == 0
    # The request id stays in the logs, now beside the trace and span ids.
    records = [r for r in _log_records(traced.artifacts) if r.get("trace_id") == trace_id]
    assert records
    assert all(r.get("request_id") and len(r.get("span_id", "")) == 16 for r in records)


async def test_no_trace_is_exported_without_an_exporter(
    stack: LocalStack, metadata: MetadataStub, collector: Collector, artifact_replicas: ReplicaFactory
) -> None:
    """The session's services have no OTEL_* variables; a replica with a collector's endpoint
    but OTEL_TRACES_EXPORTER=none exports nothing either. Neither logs trace ids, even for a
    call that arrives with a sampled W3C trace context."""
    quiet = artifact_replicas(OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, OTEL_TRACES_EXPORTER="none")
    trace_id = uuid.uuid4().hex
    request_id = unique("untraced")
    context = ((headers.REQUEST_ID, request_id), ("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"))
    await metadata.ListNamespaces(md.ListNamespacesRequest(), metadata=(*ACTOR, *context))
    async with grpc.aio.insecure_channel(quiet.address) as channel:
        health = await channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda request: request,
            response_deserializer=lambda reply: reply,
        )(b"", metadata=context)
        assert health is not None
    await asyncio.sleep(1.0)  # three export intervals of the traced pair's processes
    assert collector.spans(trace_id) == []
    assert stack.metadata is not None
    for service in (stack.metadata, quiet):
        records = _log_records(service)
        assert any(r.get("event") == "tracing off" for r in records), service.name
        assert not any("trace_id" in r for r in records), service.name
    assert any(r.get("request_id") == request_id for r in _log_records(stack.metadata))


def test_without_otel_variables_the_tracing_sdk_is_not_even_loaded() -> None:
    probe = (
        "import sys\n"
        "from modelreg_common.observability.tracing import configure_tracing\n"
        "assert not configure_tracing({'OTEL_SERVICE_NAME': 'x'}, 'modelreg-test').enabled\n"
        "assert not configure_tracing({'OTEL_TRACES_EXPORTER': 'none',"
        " 'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:1'}, 'modelreg-test').enabled\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stdout.strip() == "[]"
