"""The local store life cycle (deploy/local/modelreg_local/stores.py): configuration and one real run."""

from __future__ import annotations

import io
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from modelreg_local.stores import (
    DEFAULT_S3_ACCESS_KEY,
    ENV_FERRETDB_BIN,
    ExternalStores,
    FerretDBServer,
    LocalStores,
    S3Settings,
    StoreConfigError,
    StoreEndpoints,
    StoreStartError,
    default_ferretdb_binary,
    docker_available,
    free_port,
    open_stores,
    parse_environment,
    stores_from_environment,
)
from pymongo import MongoClient

from tests.conftest import IN_CI

S3_ENV = {
    "MODELREG_S3_ENDPOINT": "s3.example.com:9000",
    "MODELREG_S3_ACCESS_KEY": "ak",
    "MODELREG_S3_SECRET_KEY": "sk",
}
MONGO_ENV = {"MODELREG_MONGODB_URI": "mongodb://db.example.com:27017/?replicaSet=rs0"}


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_environment_names_both_stores() -> None:
    env = {**MONGO_ENV, **S3_ENV, "MODELREG_S3_SECURE": "True", "MODELREG_S3_REGION": "eu-west-1"}
    assert stores_from_environment(env) == StoreEndpoints(
        mongodb_uri=MONGO_ENV["MODELREG_MONGODB_URI"],
        s3_endpoint="s3.example.com:9000",
        s3_access_key=S3_ENV["MODELREG_S3_ACCESS_KEY"],
        s3_secret_key=S3_ENV["MODELREG_S3_SECRET_KEY"],
        s3_secure=True,
        s3_region="eu-west-1",
    )


def test_empty_environment_means_local_stores() -> None:
    assert stores_from_environment({}) is None
    assert parse_environment({"MODELREG_MONGODB_URI": " ", "MODELREG_S3_ENDPOINT": ""}) == ExternalStores()


def test_one_external_store_alone() -> None:
    assert stores_from_environment(MONGO_ENV) is None
    assert parse_environment(MONGO_ENV) == ExternalStores(mongodb_uri=MONGO_ENV["MODELREG_MONGODB_URI"])
    assert parse_environment(S3_ENV) == ExternalStores(s3=S3Settings("s3.example.com:9000", "ak", "sk"))


def test_endpoints_round_trip_through_the_environment_and_hide_the_secret() -> None:
    endpoints = StoreEndpoints("mongodb://127.0.0.1:1/", "127.0.0.1:2", "ak", "very-secret", False, None)
    assert stores_from_environment(endpoints.to_environment()) == endpoints
    assert "very-secret" not in repr(endpoints)
    assert "very-secret" not in repr(endpoints.s3)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MODELREG_S3_ENDPOINT": "s3:9000"},
            "MODELREG_S3_ACCESS_KEY and MODELREG_S3_SECRET_KEY must be set",
        ),
        ({**S3_ENV, "MODELREG_S3_SECRET_KEY": ""}, "MODELREG_S3_SECRET_KEY must be set"),
        ({"MODELREG_S3_ACCESS_KEY": "ak", "MODELREG_S3_SECRET_KEY": "sk"}, "MODELREG_S3_ENDPOINT is not"),
        ({"MODELREG_S3_REGION": "eu-west-1"}, "MODELREG_S3_ENDPOINT is not"),
        ({**S3_ENV, "MODELREG_S3_ENDPOINT": "http://s3:9000"}, "without a scheme"),
        ({**S3_ENV, "MODELREG_S3_ENDPOINT": "s3:9000/bucket"}, "no path"),
        ({**S3_ENV, "MODELREG_S3_ENDPOINT": "s3:99999"}, "invalid host or port"),
        ({**S3_ENV, "MODELREG_S3_SECURE": "maybe"}, "MODELREG_S3_SECURE must be true or false"),
        ({"MODELREG_MONGODB_URI": "postgres://db/x"}, "must start with mongodb://"),
        ({"MODELREG_MONGODB_URI": "mongodb:///db"}, "names no host"),
    ],
)
def test_inconsistent_environment_is_rejected(env: dict[str, str], message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        stores_from_environment(env)
    with pytest.raises(StoreConfigError, match=message):
        open_stores(Path("/nonexistent"), env=env)


def test_open_stores_uses_external_servers_without_starting_anything(tmp_path: Path) -> None:
    with open_stores(tmp_path, env={**MONGO_ENV, **S3_ENV}) as endpoints:
        assert endpoints.mongodb_uri == MONGO_ENV["MODELREG_MONGODB_URI"]
        assert endpoints.s3_endpoint == "s3.example.com:9000"
    assert not any(tmp_path.iterdir())


def test_ferretdb_binary_override_and_missing_binary_hint(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ferretdb"
    assert default_ferretdb_binary({ENV_FERRETDB_BIN: str(missing)}) == missing
    with (
        pytest.raises(StoreStartError, match=r"make tools"),
        open_stores(tmp_path / "data", env={ENV_FERRETDB_BIN: str(missing)}),
    ):
        pytest.fail("must not start without a FerretDB binary")


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-ferretdb"
    fake.write_text("#!/bin/sh\necho 'listen: address already in use' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    server = FerretDBServer(tmp_path / "ferretdb", binary=fake)
    server.start()
    with pytest.raises(StoreStartError, match=r"exited with code 3(.|\n)*address already in use"):
        server.wait_healthy(timeout=10)
    server.stop()
    server.stop()  # idempotent


def test_docker_available_answers_quickly() -> None:
    assert isinstance(docker_available(timeout=3), bool)


@pytest.mark.integration
def test_local_stores_serve_and_keep_data_across_restarts(tmp_path: Path) -> None:
    if not default_ferretdb_binary().exists():
        missing = "modelreg-ferretdb is not built: run `make tools` (deploy/local/build-ferretdb.sh)"
        if IN_CI:  # CI installs everything it tests: a missing binary is a failure there
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    payload = b"model weights" * 1000

    with LocalStores(tmp_path) as stores:
        endpoints = stores.endpoints
        assert endpoints.s3_access_key == DEFAULT_S3_ACCESS_KEY
        with MongoClient[dict[str, Any]](endpoints.mongodb_uri) as client:
            client.registry.models.insert_one({"_id": "m1", "name": "resnet"})
            assert client.registry.models.find_one({"_id": "m1"}) == {"_id": "m1", "name": "resnet"}
        s3 = _minio(endpoints)
        s3.make_bucket("artifacts")
        s3.put_object("artifacts", "m1/weights.bin", io.BytesIO(payload), len(payload))
        assert _read(s3, "artifacts", "m1/weights.bin") == payload

    assert stores.ferretdb is not None
    assert not stores.ferretdb.running()
    assert (tmp_path / "ferretdb").is_dir()
    assert (tmp_path / "seaweedfs").is_dir()

    with LocalStores(tmp_path) as stores:
        endpoints = stores.endpoints
        with MongoClient[dict[str, Any]](endpoints.mongodb_uri) as client:
            assert client.registry.models.find_one({"_id": "m1"}) == {"_id": "m1", "name": "resnet"}
        assert _read(_minio(endpoints), "artifacts", "m1/weights.bin") == payload


def _minio(endpoints: StoreEndpoints) -> Minio:
    return Minio(
        endpoints.s3_endpoint,
        access_key=endpoints.s3_access_key,
        secret_key=endpoints.s3_secret_key,
        secure=endpoints.s3_secure,
        region=endpoints.s3_region,
    )


def _read(client: Minio, bucket: str, name: str) -> bytes:
    response = client.get_object(bucket, name)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()
