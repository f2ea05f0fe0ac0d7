"""A store that goes away: calls answer UNAVAILABLE (reason STORE_UNAVAILABLE) within the configured
bound, health turns NOT_SERVING, and once the store is back both turn around without a restart.

These tests kill the MongoDB-wire server (FerretDB with its write-lock proxy: one process), so they
run a stack of their own (stores and both services on a data dir of their own); the session's
stack, shared by the other tests, is never touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg_api.addresses import ServiceAddresses
from modelreg_common.outages import STORE_UNAVAILABLE
from modelreg_local.stack import ARTIFACT_SERVICE, METADATA_SERVICE, LocalStack
from modelreg_local.stores import FerretDBServer, free_port, parse_environment
from modelregistry.v1 import (
    artifact_service_pb2_grpc,
    metadata_service_pb2,
    metadata_service_pb2_grpc,
    model_pb2,
)

from tests.integration.scrape import scrape, value
from tests.integration.test_local_stores import _require_ferretdb
from tests.support import bearer, download, error_info, unique, upload

if TYPE_CHECKING:
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration

TIMEOUT_MS = 1000  # MODELREG_MONGODB_TIMEOUT_MS of this stack
# A failing call may take the timeout twice (the credential check, then the handler) plus the
# scheduling of a loaded 2-core machine: still far below the 5 s (and INTERNAL) before the fix.
CALL_BOUND_SECONDS = 2 * TIMEOUT_MS / 1000 + 2.0
HEALTH_BOUND_SECONDS = 15.0
# A call that takes longer than this hangs: fail the test instead of the whole run.
HANG_SECONDS = 60.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    _require_ferretdb()
    env = {**os.environ, "MODELREG_MONGODB_TIMEOUT_MS": str(TIMEOUT_MS), "MODELREG_AUTH_CACHE_SECONDS": "5"}
    if parse_environment(env).mongodb_uri is not None:
        pytest.skip("MODELREG_MONGODB_URI names an external database: there is no process of ours to kill")
    addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    with LocalStack(tmp_path_factory.mktemp("outages"), addresses=addresses, env=env) as stack:
        yield stack


def _ferretdb(stack: LocalStack) -> FerretDBServer:
    assert stack.local_stores is not None
    assert stack.local_stores.ferretdb is not None
    return stack.local_stores.ferretdb


def kill_database(stack: LocalStack) -> None:
    """SIGKILL to the MongoDB-wire server and its proxy, as a crash would."""
    server = _ferretdb(stack)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.exit_code() is None:
        assert time.monotonic() < deadline, "FerretDB did not die"
        time.sleep(0.05)


def restart_database(stack: LocalStack) -> None:
    _ferretdb(stack).restart()


@dataclass
class Registry:
    """Clients of the stack of this module, as its bootstrap admin, and what the calls work on."""

    metadata: MetadataStub
    artifacts: ArtifactStub
    health: dict[str, health_pb2_grpc.HealthStub]  # by service name
    credential: tuple[tuple[str, str], ...]
    namespace: str
    model: str
    version: str
    path: str = "weights.bin"
    data: bytes = b"weights" * 100


@pytest.fixture(scope="module")
async def registry(own_stack: LocalStack) -> AsyncIterator[Registry]:
    credential = bearer(own_stack.admin_token())
    async with (
        grpc.aio.insecure_channel(own_stack.addresses.metadata) as metadata_channel,
        grpc.aio.insecure_channel(own_stack.addresses.artifacts) as artifact_channel,
    ):
        metadata = metadata_service_pb2_grpc.MetadataServiceStub(metadata_channel)
        namespace = (
            await metadata.CreateNamespace(
                metadata_service_pb2.CreateNamespaceRequest(namespace_id=unique("outage")),
                metadata=credential,
            )
        ).name
        model = await metadata.CreateModel(
            metadata_service_pb2.CreateModelRequest(parent=namespace, model_id="m"), metadata=credential
        )
        version = await metadata.CreateModelVersion(
            metadata_service_pb2.CreateModelVersionRequest(parent=model.name), metadata=credential
        )
        found = Registry(
            metadata,
            artifact_service_pb2_grpc.ArtifactServiceStub(artifact_channel),
            {
                METADATA_SERVICE: health_pb2_grpc.HealthStub(metadata_channel),
                ARTIFACT_SERVICE: health_pb2_grpc.HealthStub(artifact_channel),
            },
            credential,
            namespace,
            model.name,
            version.name,
        )
        await upload(found.artifacts, found.version, found.path, found.data, metadata=credential)
        yield found


# Each call once, as a client would make it; any answer but an error will do.
Call = Callable[[Registry], Awaitable[object]]


async def _create_version(r: Registry) -> object:
    request = metadata_service_pb2.CreateModelVersionRequest(
        parent=r.model, model_version=model_pb2.ModelVersion()
    )
    return await r.metadata.CreateModelVersion(request, metadata=r.credential)


async def _list_versions(r: Registry) -> object:
    request = metadata_service_pb2.ListModelVersionsRequest(parent=r.model)
    return await r.metadata.ListModelVersions(request, metadata=r.credential)


async def _list_events(r: Registry) -> object:
    request = metadata_service_pb2.ListEventsRequest(namespace=r.namespace)
    return await r.metadata.ListEvents(request, metadata=r.credential)


async def _get_namespace(r: Registry) -> object:
    request = metadata_service_pb2.GetNamespaceRequest(name=r.namespace)
    return await r.metadata.GetNamespace(request, metadata=r.credential)


async def _upload_file(r: Registry) -> object:
    return await upload(r.artifacts, r.version, unique("file"), b"more weights", metadata=r.credential)


async def _download_file(r: Registry) -> object:
    return await download(r.artifacts, r.version, r.path, metadata=r.credential)


CALLS: dict[str, Call] = {
    "CreateModelVersion": _create_version,
    "ListModelVersions": _list_versions,
    "ListEvents": _list_events,
    "GetNamespace": _get_namespace,
    "UploadFile": _upload_file,
    "DownloadFile": _download_file,
}


async def _health(r: Registry, service: str, name: str) -> int:
    try:
        reply = await r.health[service].Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
    except grpc.aio.AioRpcError:
        return -1
    return int(reply.status)


async def _wait_health(r: Registry, wanted: int) -> None:
    """Until every service (and each server's overall "" status) reports `wanted`."""
    deadline = time.monotonic() + HEALTH_BOUND_SECONDS
    while True:
        statuses = {
            (service, name): await _health(r, service, name) for service in r.health for name in ("", service)
        }
        if all(status == wanted for status in statuses.values()):
            return
        assert time.monotonic() < deadline, f"health is {statuses}, not {wanted} everywhere"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("rpc", list(CALLS))
async def test_a_call_meeting_a_dead_database_is_unavailable_then_succeeds_once_it_is_back(
    own_stack: LocalStack, registry: Registry, rpc: str
) -> None:
    call = CALLS[rpc]
    await asyncio.wait_for(
        call(registry), HANG_SECONDS
    )  # works, and leaves the caller's credential in the services' caches

    kill_database(own_stack)
    try:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(call(registry), HANG_SECONDS)
        elapsed = time.monotonic() - started
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE, failed.value.details()
        # The handler's store call meets the outage, or the credential check does when the
        # credential's cache entry (5 s here) expired on a slow machine: both are outages.
        assert error_info(failed.value)[0] in (STORE_UNAVAILABLE, "CREDENTIALS_UNAVAILABLE")
        assert "mongodb" not in (failed.value.details() or "").lower()  # no connection string
        assert elapsed < CALL_BOUND_SECONDS
    finally:
        restart_database(own_stack)

    await _wait_health(registry, SERVING)
    await asyncio.wait_for(call(registry), HANG_SECONDS)


async def test_health_is_not_serving_while_the_database_is_down_and_calls_fail_within_the_bound(
    own_stack: LocalStack, registry: Registry
) -> None:
    await _wait_health(registry, SERVING)
    kill_database(own_stack)
    try:
        await _wait_health(registry, NOT_SERVING)
        # By now every pooled connection is gone: each call waits for server selection, bounded by
        # MODELREG_MONGODB_TIMEOUT_MS (the credential check may be what meets the outage first).
        for rpc, call in CALLS.items():
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await asyncio.wait_for(call(registry), HANG_SECONDS)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE, (rpc, failed.value.details())
            assert error_info(failed.value)[0] in (STORE_UNAVAILABLE, "CREDENTIALS_UNAVAILABLE"), rpc
            assert time.monotonic() - started < CALL_BOUND_SECONDS, rpc
    finally:
        restart_database(own_stack)

    await _wait_health(registry, SERVING)
    for call in CALLS.values():
        await asyncio.wait_for(call(registry), HANG_SECONDS)


def test_health_is_not_serving_while_object_storage_is_down(own_stack: LocalStack) -> None:
    """The artifact service probes its bucket too; the metadata service needs no S3."""
    assert own_stack.local_stores is not None
    seaweedfs = own_stack.local_stores.seaweedfs
    assert seaweedfs is not None
    assert seaweedfs.pid is not None
    os.kill(seaweedfs.pid, signal.SIGKILL)
    try:
        _wait_sync(own_stack.addresses.artifacts, ARTIFACT_SERVICE, NOT_SERVING)
        _wait_sync(own_stack.addresses.metadata, METADATA_SERVICE, SERVING)
    finally:
        seaweedfs.restart()
    _wait_sync(own_stack.addresses.artifacts, ARTIFACT_SERVICE, SERVING)


def _wait_sync(address: str, service: str, wanted: int) -> None:
    deadline = time.monotonic() + HEALTH_BOUND_SECONDS
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
            if status == wanted:
                return
            assert time.monotonic() < deadline, f"{service} health is {status}, not {wanted}"
            time.sleep(0.2)


async def test_store_outages_show_in_the_metrics(own_stack: LocalStack, registry: Registry) -> None:
    """What an alert reads (docs/observability.md): the store is down, calls fail UNAVAILABLE,
    store errors counted by store and kind; and the store back up afterwards."""
    assert own_stack.metadata is not None
    assert own_stack.artifacts is not None
    metadata_url, artifacts_url = own_stack.metadata.metrics_url, own_stack.artifacts.metrics_url
    await _wait_health(registry, SERVING)
    before = await scrape(metadata_url)
    kill_database(own_stack)
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(_get_namespace(registry), HANG_SECONDS)
        await _wait_health(registry, NOT_SERVING)
        during = await scrape(metadata_url)
    finally:
        restart_database(own_stack)
    outage_errors = sum(
        value(during, "modelreg_store_errors_total", store="database", kind=kind)
        - value(before, "modelreg_store_errors_total", store="database", kind=kind)
        for kind in ("unreachable", "timeout")
    )
    assert outage_errors >= 1
    assert value(during, "modelreg_store_up", store="database") == 0
    unavailable = {"service": METADATA_SERVICE, "method": "GetNamespace", "code": "UNAVAILABLE"}
    assert value(during, "modelreg_rpc_requests_total", **unavailable) > value(
        before, "modelreg_rpc_requests_total", **unavailable
    )
    await _wait_health(registry, SERVING)
    assert value(await scrape(metadata_url), "modelreg_store_up", store="database") == 1

    # Object storage: the artifact service's probe and a download that cannot read its bytes.
    assert own_stack.local_stores is not None
    seaweedfs = own_stack.local_stores.seaweedfs
    assert seaweedfs is not None
    assert seaweedfs.pid is not None
    before = await scrape(artifacts_url)
    os.kill(seaweedfs.pid, signal.SIGKILL)
    try:
        await asyncio.to_thread(_wait_sync, own_stack.addresses.artifacts, ARTIFACT_SERVICE, NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(_download_file(registry), HANG_SECONDS)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
        during = await scrape(artifacts_url)
    finally:
        seaweedfs.restart()
    assert value(during, "modelreg_store_up", store="object_storage") == 0
    assert value(during, "modelreg_store_up", store="database") == 1
    assert (
        sum(
            value(during, "modelreg_store_errors_total", store="object_storage", kind=kind)
            - value(before, "modelreg_store_errors_total", store="object_storage", kind=kind)
            for kind in ("unreachable", "timeout", "unavailable")
        )
        >= 1
    )
    await asyncio.to_thread(_wait_sync, own_stack.addresses.artifacts, ARTIFACT_SERVICE, SERVING)
    assert value(await scrape(artifacts_url), "modelreg_store_up", store="object_storage") == 1
