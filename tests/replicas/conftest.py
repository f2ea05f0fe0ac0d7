"""The multi-replica run: one cluster (tests/replicas/cluster.py) for the tests of this folder.

Started once, after the single-process tests' stack, with stores of its own; under CI=true a
cluster that cannot start fails the run, elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import grpc
import pytest
from modelreg_local.stack import ServiceStartError
from modelreg_local.stores import StoreConfigError, StoreStartError
from modelregistry.v1 import artifact_service_pb2_grpc, metadata_service_pb2_grpc

from tests.conftest import IN_CI
from tests.replicas.cluster import ARTIFACT_REPLICAS, METADATA_REPLICAS, TEST_ENV, Cluster, channel

if TYPE_CHECKING:
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    replicas = Cluster(tmp_path_factory.mktemp("replicas"), TEST_ENV)
    try:
        replicas.start()
    except (StoreStartError, StoreConfigError, ServiceStartError) as exc:
        replicas.stop()
        if IN_CI:
            pytest.fail(f"the multi-replica cluster could not start under CI: {exc}", pytrace=False)
        pytest.skip(f"multi-replica cluster unavailable (run `make tools`): {exc}")
    yield replicas
    replicas.stop()


@pytest.fixture
async def metadata_replicas(
    cluster: Cluster,
) -> AsyncIterator[list[MetadataStub]]:
    """One stub per metadata replica (to send a call to a chosen one)."""
    channels = [channel(cluster.services[name].address) for name in METADATA_REPLICAS]
    yield [metadata_service_pb2_grpc.MetadataServiceStub(c) for c in channels]
    for opened in channels:
        await opened.close(None)


@pytest.fixture
async def artifact_replicas(
    cluster: Cluster,
) -> AsyncIterator[list[ArtifactStub]]:
    channels = [channel(cluster.services[name].address) for name in ARTIFACT_REPLICAS]
    yield [artifact_service_pb2_grpc.ArtifactServiceStub(c) for c in channels]
    for opened in channels:
        await opened.close(None)


@pytest.fixture
async def balanced(cluster: Cluster) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to every metadata replica, round robin, as a client behind a headless Service."""
    async with channel(cluster.metadata) as opened:
        yield opened
