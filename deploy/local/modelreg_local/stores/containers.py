"""mongo:7 and MinIO containers through testcontainers, where a Docker engine answers."""

from __future__ import annotations

import contextlib
import socket
from types import TracebackType

from modelreg_common.config import S3Settings

from modelreg_local.stores.endpoints import (
    DEFAULT_S3_ACCESS_KEY,
    DEFAULT_S3_REGION,
    DEFAULT_S3_SECRET_KEY,
    ExternalStores,
    StoreEndpoints,
)

MONGO_IMAGE = "mongo:7"
MINIO_IMAGE = "minio/minio:latest"


def docker_available(timeout: float = 3.0) -> bool:
    """True when testcontainers is installed and a Docker engine answers a ping within `timeout`."""
    try:
        from testcontainers.core.docker_client import (  # noqa: PLC0415 - test-only dependency
            DockerClient,
            get_docker_host,
        )

        host = get_docker_host() or "unix:///var/run/docker.sock"
    except Exception:  # no testcontainers, unreadable configuration: no Docker for us
        return False
    # The usual "no engine" case is answered without the Docker SDK, which leaks an unclosed socket
    # (a ResourceWarning, an error under pytest) when the socket file is missing.
    if host.startswith("unix://") and not _unix_socket_accepts(host.removeprefix("unix://"), timeout):
        return False
    try:
        client = DockerClient(timeout=timeout).client
    except Exception:  # no socket, no engine, bad DOCKER_HOST: all mean "no Docker"
        return False
    try:
        return bool(client.ping())
    except Exception:  # the engine did not answer in time
        return False
    finally:
        client.close()


def _unix_socket_accepts(path: str, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
        return True


class ContainerStores:
    """`mongo:7` and MinIO containers through testcontainers, for stores not named in `external`."""

    def __init__(
        self,
        external: ExternalStores | None = None,
        *,
        mongo_image: str = MONGO_IMAGE,
        minio_image: str = MINIO_IMAGE,
        access_key: str = DEFAULT_S3_ACCESS_KEY,
        secret_key: str = DEFAULT_S3_SECRET_KEY,
    ) -> None:
        self.external = external if external is not None else ExternalStores()
        self.mongo_image = mongo_image
        self.minio_image = minio_image
        self.access_key = access_key
        self.secret_key = secret_key
        self._stack = contextlib.ExitStack()
        self._endpoints: StoreEndpoints | None = None

    @property
    def endpoints(self) -> StoreEndpoints:
        if self._endpoints is None:
            raise RuntimeError("ContainerStores is not started")
        return self._endpoints

    def __enter__(self) -> StoreEndpoints:
        # testcontainers.mongodb / testcontainers.minio are deprecated aliases (DeprecationWarning) in 4.x.
        from testcontainers.community.minio import MinioContainer  # noqa: PLC0415 - test-only dependency
        from testcontainers.community.mongodb import MongoDbContainer  # noqa: PLC0415

        with contextlib.ExitStack() as stack:
            mongodb_uri = self.external.mongodb_uri
            if mongodb_uri is None:
                mongo = stack.enter_context(MongoDbContainer(self.mongo_image))
                mongodb_uri = mongo.get_connection_url()
            s3 = self.external.s3
            if s3 is None:
                minio = MinioContainer(
                    self.minio_image, access_key=self.access_key, secret_key=self.secret_key
                )
                # Current MinIO releases read MINIO_ROOT_*; testcontainers sets only the older names.
                minio.with_env("MINIO_ROOT_USER", self.access_key)
                minio.with_env("MINIO_ROOT_PASSWORD", self.secret_key)
                stack.enter_context(minio)
                endpoint = f"{minio.get_container_host_ip()}:{minio.get_exposed_port(minio.port)}"
                s3 = S3Settings(
                    endpoint, self.access_key, self.secret_key, secure=False, region=DEFAULT_S3_REGION
                )
            self._endpoints = StoreEndpoints.from_parts(mongodb_uri, s3)
            self._stack = stack.pop_all()
        return self._endpoints

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._endpoints = None
        self._stack.close()
