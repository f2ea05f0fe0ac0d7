"""Who can reach the local stores (docs/local-stack.md, "What the local stores allow"): how they are started.

FerretDB and its write-lock proxy are given Unix sockets only this user can open; SeaweedFS is given a
private working directory with fresh JWT keys and a gRPC certificate, no HTTP APIs but S3 and a secret of
its own. Stand-in binaries record what the servers would be started with; what the real servers refuse is
checked in tests/integration/test_local_stores.py.
"""

from __future__ import annotations

import os
import stat
import time
import tomllib
from pathlib import Path

import pytest
from modelreg_local.stores import (
    DEFAULT_S3_SECRET_KEY,
    FerretDBServer,
    SeaweedS3Server,
    mongodb_socket_uri,
    parse_environment,
)
from pymongo.uri_parser import parse_uri


def _recording_binary(tmp_path: Path) -> Path:
    """A stand-in server that writes its arguments, working directory and WEED_* variables, then exits."""
    fake = tmp_path / "fake-server"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/args"\n'
        f'pwd > "{tmp_path}/cwd"\n'
        f'env | grep "^WEED_" > "{tmp_path}/weed-env"\n'
        f'touch "{tmp_path}/done"\n'
    )
    fake.chmod(0o755)
    return fake


def _wait_for_stand_in(tmp_path: Path) -> None:
    done = tmp_path / "done"
    deadline = time.monotonic() + 10
    while not done.exists():
        assert time.monotonic() < deadline, "the stand-in server did not run"
        time.sleep(0.01)
    done.unlink()


def _start_and_stop(server: FerretDBServer | SeaweedS3Server, tmp_path: Path) -> None:
    """Start the recording stand-in and stop it once it has written what it saw."""
    server.start()
    try:
        _wait_for_stand_in(tmp_path)
    finally:
        server.stop()


def test_a_socket_uri_is_what_pymongo_reads_as_a_unix_socket() -> None:
    path = Path("/srv/odd dir+name%/mongodb.sock")
    uri = mongodb_socket_uri(path)
    assert parse_uri(uri)["nodelist"] == [(str(path), None)]
    # The services read it back from MODELREG_MONGODB_URI.
    assert parse_environment({"MODELREG_MONGODB_URI": uri}).mongodb_uri == uri


def test_ferretdb_is_started_on_private_unix_sockets(tmp_path: Path) -> None:
    server = FerretDBServer(tmp_path / "ferretdb", binary=_recording_binary(tmp_path))
    _start_and_stop(server, tmp_path)
    sockets = tmp_path / "ferretdb" / "sockets"
    args = (tmp_path / "args").read_text().splitlines()
    assert f"-listen={sockets / 'mongodb.sock'}" in args
    assert f"-backend-socket={sockets / 'backend.sock'}" in args
    assert server.uri == mongodb_socket_uri(sockets / "mongodb.sock")
    assert stat.S_IMODE((tmp_path / "ferretdb").stat().st_mode) == 0o700


def test_ferretdb_sockets_move_to_a_short_private_directory_when_the_data_dir_is_too_deep(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 100) / "ferretdb"
    server = FerretDBServer(deep, binary=_recording_binary(tmp_path))
    server.start()
    try:
        _wait_for_stand_in(tmp_path)
        socket_dir = server.socket_dir
        assert socket_dir is not None
        assert not socket_dir.is_relative_to(deep)
        assert len(os.fsencode(socket_dir / "backend.sock")) <= 107
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert f"-listen={socket_dir / 'mongodb.sock'}" in (tmp_path / "args").read_text().splitlines()
    finally:
        server.stop()
    assert not socket_dir.exists()  # the temporary directory goes with the server


def test_a_mongo_port_is_an_explicit_choice_of_tcp(tmp_path: Path) -> None:
    server = FerretDBServer(tmp_path / "ferretdb", port=40123, binary=_recording_binary(tmp_path))
    _start_and_stop(server, tmp_path)
    args = (tmp_path / "args").read_text().splitlines()
    assert "-listen=127.0.0.1:40123" in args
    assert any(arg.startswith("-backend-socket=/") for arg in args)  # FerretDB itself stays on a socket
    assert server.uri == "mongodb://127.0.0.1:40123/"


def test_seaweedfs_runs_in_a_private_directory_with_fresh_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEED_JWT_SIGNING_KEY", "would-override-security.toml")
    server = SeaweedS3Server(tmp_path / "seaweedfs", binary=_recording_binary(tmp_path))
    keys = []
    for _ in range(2):
        _start_and_stop(server, tmp_path)
        security = server.security_dir
        assert (tmp_path / "cwd").read_text().strip() == str(security)  # weed reads ./security.toml
        assert "-disableHttp" in (tmp_path / "args").read_text().splitlines()
        assert (tmp_path / "weed-env").read_text() == ""
        assert stat.S_IMODE(security.stat().st_mode) == 0o700
        for name in ("security.toml", "grpc.crt", "grpc.key"):
            assert stat.S_IMODE((security / name).stat().st_mode) == 0o600, name
        config = tomllib.loads((security / "security.toml").read_text())
        jwt = config["jwt"]
        signing = [jwt["signing"]["key"], jwt["signing"]["read"]["key"]]
        signing += [jwt["filer_signing"]["key"], jwt["filer_signing"]["read"]["key"]]
        assert all(len(key) >= 32 for key in signing)
        assert len(set(signing)) == 4
        assert config["grpc"]["ca"] == str(server.grpc_certificate)
        for component in ("master", "volume", "filer", "s3", "admin", "worker", "client"):
            assert config["grpc"][component] == {
                "cert": str(server.grpc_certificate),
                "key": str(server.grpc_key),
            }
        keys.append(signing)
    assert not set(keys[0]) & set(keys[1])


def test_seaweedfs_s3_secret_is_the_data_dirs_own(tmp_path: Path) -> None:
    server = SeaweedS3Server(tmp_path / "seaweedfs", binary=_recording_binary(tmp_path))
    _start_and_stop(server, tmp_path)
    secret = server.secret_key
    assert secret != DEFAULT_S3_SECRET_KEY
    assert len(secret) >= 32
    assert server.secret_path.read_text().strip() == secret
    assert stat.S_IMODE(server.secret_path.stat().st_mode) == 0o600
    again = SeaweedS3Server(tmp_path / "seaweedfs", binary=_recording_binary(tmp_path))
    _start_and_stop(again, tmp_path)
    assert again.secret_key == secret  # kept across restarts, for S3 tools configured with it
