"""The local store life cycle (deploy/local/modelreg_local/stores/) without real servers: the environment
that names external stores, ports, start-up failures and the Docker check. The stores' real run is in
tests/integration/test_local_stores.py."""

from __future__ import annotations

import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelreg_local.stores import (
    ENV_FERRETDB_BIN,
    ExternalStores,
    FerretDBServer,
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
from testcontainers.core.config import testcontainers_config

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


@pytest.fixture
def docker_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Unix socket path in a short private directory, the only Docker engine testcontainers may find."""
    monkeypatch.setattr(testcontainers_config, "tc_properties", {})  # no tc.host from the user's properties
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "docker.sock"
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        yield path


def test_docker_available_says_no_at_once_when_there_is_no_engine(docker_host: Path) -> None:
    started = time.monotonic()
    assert docker_available(timeout=5) is False
    assert time.monotonic() - started < 1  # a missing socket is not waited for


def test_docker_available_gives_up_on_an_engine_that_does_not_answer(docker_host: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(docker_host))
        silent.listen()  # connections are accepted by the kernel, and never answered
        started = time.monotonic()
        assert docker_available(timeout=1) is False
        assert time.monotonic() - started < 5  # about the timeout, not the Docker SDK's 60 s
