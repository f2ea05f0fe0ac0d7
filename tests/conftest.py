"""Test-session fixtures: one real local stack (FerretDB, SeaweedFS, both services) per session.

Integration tests talk to the services only over gRPC. Under CI=true a stack that cannot start
fails the run; elsewhere the integration tests are skipped with the reason, loudly.
When a Docker engine answers, the stores run as mongo:7 / minio containers instead; the
MODELREG_MONGODB_URI / MODELREG_S3_* variables point the tests at external servers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from minio import Minio
from modelreg_api.addresses import ARTIFACT_ADDR_ENV, ServiceAddresses
from modelreg_local.stack import (
    ARTIFACT_SERVICE,
    INTERNAL_TOKEN_FILE,
    LocalStack,
    ServiceProcess,
    ServiceStartError,
)
from modelreg_local.stores import StoreConfigError, StoreStartError, free_port
from modelregistry.v1 import (
    access_service_pb2_grpc,
    artifact_service_pb2_grpc,
    manifest_service_pb2_grpc,
    metadata_service_pb2_grpc,
)

from tests.support import ALICE, ISSUER, credential_for, default_credential

if TYPE_CHECKING:
    from tests.support import AccessStub, ArtifactStub, ManifestStub, MetadataStub

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Headless Chromium fixtures and the `--screenshots` option of the browser tests (tests/web).
pytest_plugins = ("tests.chromium",)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    root: Path = tmp_path_factory.mktemp("stack")
    local = LocalStack(root, addresses=addresses, prefer_containers=True, log_level="DEBUG")
    try:
        local.start()
    except (StoreStartError, StoreConfigError, ServiceStartError) as exc:
        local.stop()
        if IN_CI:
            pytest.fail(f"the test stack could not start under CI: {exc}", pytrace=False)
        pytest.skip(f"integration stack unavailable (run `make tools`): {exc}")
    ISSUER.use(local.addresses.metadata, local.admin_token())
    yield local
    local.stop()


def _alice() -> str:
    return credential_for(ALICE)


@pytest.fixture(scope="session")
async def metadata_channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the metadata service whose calls act as alice unless they name a credential."""
    async with grpc.aio.insecure_channel(
        stack.addresses.metadata, interceptors=default_credential(_alice)
    ) as channel:
        yield channel


@pytest.fixture(scope="session")
async def artifact_channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(
        stack.addresses.artifacts,
        options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)],
        interceptors=default_credential(_alice),
    ) as channel:
        yield channel


@pytest.fixture(scope="session")
async def manifests(stack: LocalStack) -> AsyncIterator[ManifestStub]:
    """The metadata service's internal ManifestService, called with the artifact service's own
    credential (the stack's internal token file), as only the artifact service may."""
    internal = (stack.data_root / INTERNAL_TOKEN_FILE).read_text().strip()
    async with grpc.aio.insecure_channel(
        stack.addresses.metadata, interceptors=default_credential(lambda: internal)
    ) as channel:
        yield manifest_service_pb2_grpc.ManifestServiceStub(channel)


@pytest.fixture(scope="session")
def access(metadata_channel: grpc.aio.Channel) -> AccessStub:
    return access_service_pb2_grpc.AccessServiceStub(metadata_channel)


@pytest.fixture(scope="session")
def metadata(metadata_channel: grpc.aio.Channel) -> MetadataStub:
    return metadata_service_pb2_grpc.MetadataServiceStub(metadata_channel)


@pytest.fixture(scope="session")
def artifacts(artifact_channel: grpc.aio.Channel) -> ArtifactStub:
    return artifact_service_pb2_grpc.ArtifactServiceStub(artifact_channel)


ReplicaFactory = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
def artifact_replicas(stack: LocalStack) -> Iterator[ReplicaFactory]:
    """Start more artifact service processes on the same stores, with extra environment.

    Tests that kill a process or need short timers use their own replica, so the session-wide
    stack stays intact.
    """
    assert stack.artifacts is not None
    base_env = stack.artifacts.env
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        address = f"127.0.0.1:{free_port()}"
        replica = ServiceProcess(
            f"artifacts-replica-{len(started) + 1}",
            module="modelreg_artifacts",
            service=ARTIFACT_SERVICE,
            address=address,
            env={**base_env, ARTIFACT_ADDR_ENV: address, **env},
            log_dir=stack.log_dir,
        )
        started.append(replica)
        replica.start()
        replica.wait_healthy()
        return replica

    yield start
    for replica in started:
        replica.stop()


@pytest.fixture(scope="session")
def second_replica(artifact_replicas: ReplicaFactory) -> ServiceProcess:
    """Another replica of the artifact service (5 MiB parts, so tests need fewer bytes)."""
    return artifact_replicas(MODELREG_S3_PART_MIB="5")


@pytest.fixture(scope="session")
def bucket(stack: LocalStack) -> tuple[Minio, str]:
    """Direct access to the object store, to check what is stored or to damage it on purpose."""
    assert stack.stores is not None
    s3 = stack.stores.s3
    client = Minio(
        s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure, region=s3.region
    )
    return client, os.environ.get("MODELREG_S3_BUCKET", "modelreg")
