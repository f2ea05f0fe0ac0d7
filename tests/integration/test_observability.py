"""Prometheus metrics, scraped from the services' `/metrics` after real calls (docs/observability.md).

Each test reads the counters before and after its own calls: the session's services are shared,
but no other call runs meanwhile, so the differences are exactly what these calls did.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg_local.stack import LocalStack, ServiceProcess
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc
from modelregistry.v1 import metadata_service_pb2 as md

from tests.conftest import ReplicaFactory
from tests.integration.scrape import Samples, scrape, scrape_now, series, value
from tests.support import ACTOR, authenticated_channel, download, new_version, spec_for, unique, upload

if TYPE_CHECKING:
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration

METADATA = "modelregistry.v1.MetadataService"
ARTIFACTS = "modelregistry.v1.ArtifactService"
PATIENCE_SECONDS = 10.0


def _services(stack: LocalStack) -> tuple[ServiceProcess, ServiceProcess]:
    assert stack.metadata is not None
    assert stack.artifacts is not None
    return stack.metadata, stack.artifacts


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def _until(url: str, name: str, wanted: float, **labels: str) -> Samples:
    """Scrape until the sample has the wanted value (the server counts a call just after the
    client has its answer), or fail naming what it was."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        samples = await scrape(url)
        found = value(samples, name, **labels)
        if found == wanted or time.monotonic() > deadline:
            assert found == wanted, (name, labels, found)
            return samples
        await asyncio.sleep(0.05)


async def _counted(before: Samples, url: str, **labels: str) -> Samples:
    """Scrape until one more call with these labels is counted than `before`."""
    name = "modelreg_rpc_requests_total"
    return await _until(url, name, value(before, name, **labels) + 1, **labels)


async def test_rpcs_are_counted_and_timed_by_method_and_code(
    stack: LocalStack, metadata: MetadataStub
) -> None:
    service, _ = _services(stack)
    version = await new_version(metadata)
    namespace = version.name.split("/models/")[0]
    before = await scrape(service.metrics_url)
    await metadata.GetNamespace(md.GetNamespaceRequest(name=namespace), metadata=ACTOR)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await metadata.GetNamespace(
            md.GetNamespaceRequest(name=f"namespaces/{unique('gone')}"), metadata=ACTOR
        )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    after = await _counted(
        before, service.metrics_url, service=METADATA, method="GetNamespace", code="NOT_FOUND"
    )
    # A handler that aborts on its own (the health service, for a service it does not know).
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="no.Such"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    health = {"service": "grpc.health.v1.Health", "method": "Check"}
    after = await _counted(before, service.metrics_url, **health, code="NOT_FOUND")
    for code in ("OK", "NOT_FOUND"):
        labels = {"service": METADATA, "method": "GetNamespace", "code": code}
        assert _delta(before, after, "modelreg_rpc_requests_total", **labels) == 1
        assert _delta(before, after, "modelreg_rpc_duration_seconds_count", **labels) == 1
        assert _delta(before, after, "modelreg_rpc_duration_seconds_sum", **labels) > 0
        assert value(after, "modelreg_rpc_duration_seconds_bucket", **labels, le="+Inf") >= 1
    method = {"service": METADATA, "method": "GetNamespace"}
    assert _delta(before, after, "modelreg_rpc_received_bytes_total", **method) > 0
    assert _delta(before, after, "modelreg_rpc_sent_bytes_total", **method) > 0
    assert value(after, "modelreg_rpc_in_flight", **method) == 0
    # Process metrics come along; the relay's lag is there from the start.
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "modelreg_event_relay_lag_seconds") >= 0
    assert series(after, "modelreg_event_relay_pending") == [{}]
    assert series(after, "modelreg_store_up") == [{"store": "database"}]
    assert {labels["kind"] for labels in series(after, "modelreg_store_errors_total")} == {
        "unreachable",
        "timeout",
        "unavailable",
        "other",
    }
    # Only names from the fixed set of served methods and codes: nothing a caller sent.
    assert all(labels["method"].isidentifier() for labels in series(after, "modelreg_rpc_requests_total"))


async def test_the_event_relay_counts_what_it_places(stack: LocalStack, metadata: MetadataStub) -> None:
    service, _ = _services(stack)
    before = await scrape(service.metrics_url)
    await new_version(metadata)  # a model and a version: two events
    deadline = time.monotonic() + PATIENCE_SECONDS
    while _delta(before, after := await scrape(service.metrics_url), "modelreg_events_relayed_total") < 2:
        assert time.monotonic() < deadline, "the relay placed fewer than two events"
        await asyncio.sleep(0.05)
    assert value(after, "modelreg_event_relay_pending") == 0
    assert value(after, "modelreg_event_relay_lag_seconds") == 0


async def test_file_bytes_are_counted_in_both_directions_and_streams_when_they_end(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    _, service = _services(stack)
    version = await new_version(metadata)
    data = os.urandom(300_000)
    before = await scrape(service.metrics_url)
    await upload(artifacts, version.name, "weights.bin", data)
    assert (await download(artifacts, version.name, "weights.bin"))[1] == data
    after = await _counted(before, service.metrics_url, service=ARTIFACTS, method="DownloadFile", code="OK")
    assert _delta(before, after, "modelreg_artifact_bytes_total", direction="upload") == len(data)
    assert _delta(before, after, "modelreg_artifact_bytes_total", direction="download") == len(data)
    upload_file = {"service": ARTIFACTS, "method": "UploadFile"}
    assert _delta(before, after, "modelreg_rpc_requests_total", **upload_file, code="OK") == 1
    # The wire carries the file plus the messages' envelopes.
    assert _delta(before, after, "modelreg_rpc_received_bytes_total", **upload_file) > len(data)
    download_file = {"service": ARTIFACTS, "method": "DownloadFile"}
    assert _delta(before, after, "modelreg_rpc_sent_bytes_total", **download_file) > len(data)
    assert value(after, "modelreg_upload_sessions_active") == 0


async def test_an_open_upload_stream_is_an_active_session_until_it_ends(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    _, service = _services(stack)
    version = await new_version(metadata)
    data = os.urandom(256 * 1024)
    session = await artifacts.StartUpload(
        art.StartUploadRequest(spec=spec_for(version.name, "model.bin", data)), metadata=ACTOR
    )
    active = value(await scrape(service.metrics_url), "modelreg_upload_sessions_active")
    half = len(data) // 2
    opened = asyncio.Event()

    async def messages() -> AsyncIterator[art.WriteUploadRequest]:
        yield art.WriteUploadRequest(upload_session=session.name, write_offset=0)
        yield art.WriteUploadRequest(write_offset=0, data=data[:half])
        await opened.wait()  # the stream stays open while the test looks
        yield art.WriteUploadRequest(write_offset=half, data=data[half:], finish_write=True)

    before = await scrape(service.metrics_url)
    writing = asyncio.ensure_future(artifacts.WriteUpload(messages(), metadata=ACTOR))
    try:
        await _until(service.metrics_url, "modelreg_upload_sessions_active", active + 1)
    finally:
        opened.set()
    assert (await writing).state == art.UPLOAD_STATE_FINISHED
    await _counted(before, service.metrics_url, service=ARTIFACTS, method="WriteUpload", code="OK")
    await _until(service.metrics_url, "modelreg_upload_sessions_active", active)


@pytest.fixture(scope="module")
def collector(artifact_replicas: ReplicaFactory) -> ServiceProcess:
    """A replica of its own (its own metrics) with a 1 s grace and no periodic collection."""
    return artifact_replicas(MODELREG_GC_GRACE_SECONDS="1", MODELREG_GC_INTERVAL_SECONDS="0")


async def test_garbage_collection_counts_its_runs_and_the_bytes_it_freed(
    metadata: MetadataStub, artifacts: ArtifactStub, collector: ServiceProcess
) -> None:
    version = await new_version(metadata)
    dropped = os.urandom(70_000)
    await upload(artifacts, version.name, "model.bin", dropped)
    await upload(artifacts, version.name, "model.bin", os.urandom(100), replace=True)  # unreferenced now
    await asyncio.sleep(1.5)
    before = await scrape(collector.metrics_url)
    async with authenticated_channel(collector.address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        dry = await stub.CollectGarbage(art.CollectGarbageRequest(dry_run=True), metadata=ACTOR)
        report = await stub.CollectGarbage(art.CollectGarbageRequest(dry_run=False), metadata=ACTOR)
    assert dry.deleted_bytes >= len(dropped)
    assert report.deleted_bytes >= len(dropped)
    after = await scrape(collector.metrics_url)
    assert _delta(before, after, "modelreg_gc_runs_total", dry_run="true", result="ok") == 1
    assert _delta(before, after, "modelreg_gc_runs_total", dry_run="false", result="ok") == 1
    assert _delta(before, after, "modelreg_gc_freed_bytes_total") == report.deleted_bytes
    assert _delta(before, after, "modelreg_gc_deleted_blobs_total") == report.deleted_blobs
    assert value(after, "modelreg_gc_last_success_timestamp_seconds") >= time.time() - 60
    assert value(after, "modelreg_gc_runs_total", dry_run="false", result="error") == 0
    assert sorted(labels["store"] for labels in series(after, "modelreg_store_up")) == [
        "database",
        "object_storage",
    ]


def test_the_metrics_port_serves_only_metrics(stack: LocalStack) -> None:
    service, _ = _services(stack)
    assert service.metrics_address.startswith("127.0.0.1:")
    with urllib.request.urlopen(service.metrics_url, timeout=5) as response:  # noqa: S310 - loopback
        assert response.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(service.metrics_url.replace("/metrics", "/"), timeout=5)  # noqa: S310
    assert refused.value.code == 404
    request = urllib.request.Request(  # noqa: S310 - loopback
        service.metrics_url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().rstrip().endswith(b"# EOF")
    assert [labels["major"] for labels in series(scrape_now(service.metrics_url), "python_info")] == [
        str(sys.version_info.major)
    ]


async def test_a_stream_the_client_abandons_is_counted_cancelled_and_leaves_no_call_in_flight(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    _, service = _services(stack)
    version = await new_version(metadata)
    data = os.urandom(4 * 1024 * 1024)
    await upload(artifacts, version.name, "big.bin", data)
    download_file = {"service": ARTIFACTS, "method": "DownloadFile"}
    before = await scrape(service.metrics_url)
    call = artifacts.DownloadFile(
        art.DownloadFileRequest(model_version=version.name, path="big.bin"), metadata=ACTOR
    )
    first = await call.read()
    assert isinstance(first, art.DownloadFileResponse)
    assert first.HasField("file")
    call.cancel()
    await _counted(before, service.metrics_url, **download_file, code="CANCELLED")
    await _until(service.metrics_url, "modelreg_rpc_in_flight", 0, **download_file)
