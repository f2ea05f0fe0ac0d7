"""The images' Dockerfiles (deploy/docker): hadolint clean, and built the way issue 15 asks.

No Docker engine here, so the build itself is not run; what can be checked offline is: the base
is pinned, the final stage runs a numeric non-root user with the venv only, the entry command
exists in the package it installs, and the TLS health probe the prod overlay runs works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.manifests import REPO, tool
from tests.tls_certs import PrivateCa

DOCKER = REPO / "deploy" / "docker"
PROBE = DOCKER / "grpc_health_probe.py"
# Dockerfile -> the uv workspace member it installs.
IMAGES = {
    "metadata": "modelreg-metadata",
    "artifacts": "modelreg-artifacts",
    "web": "modelreg-web",
    "cli": "modelreg",
}
PINNED_PYTHON = "python:3.11.14-slim-bookworm"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def _member(package: str) -> Path | None:
    for pyproject in REPO.glob("*/*/pyproject.toml"):
        if tomllib.loads(pyproject.read_text())["project"]["name"] == package:
            return pyproject.parent
    return None


def test_the_dockerfiles_are_hadolint_clean() -> None:
    files = sorted(DOCKER.glob("*.Dockerfile"))
    assert {f.name.removesuffix(".Dockerfile") for f in files} == set(IMAGES)
    result = subprocess.run(
        [tool("hadolint", "HADOLINT"), "--no-color", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_installs_the_locked_package_and_runs_it_unprivileged(image: str) -> None:
    instructions = _instructions(DOCKER / f"{image}.Dockerfile")
    for op, args in instructions:
        if op == "FROM":
            assert args.split()[0] == PINNED_PYTHON, args
        assert op != "HEALTHCHECK", "probes check health, not the image"
    package = IMAGES[image]
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert f"uv sync --frozen --no-dev --no-editable --package {package}" in runs
    final = _final_stage(instructions)
    final_runs = [args for op, args in final if op == "RUN"]
    assert not any("install" in args and "uninstall" not in args for args in final_runs), final_runs
    assert next(args for op, args in final if op == "COPY") == "--from=build /opt/venv /opt/venv"
    [user] = [args for op, args in final if op == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert int(uid) >= 10000, user
    assert gid.isdigit(), user
    [entrypoint] = [args for op, args in final if op == "ENTRYPOINT"]
    command = json.loads(entrypoint)  # exec form: a JSON array
    member = _member(package)
    assert member is not None, f"no workspace member is the package {package}"
    project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    if command[0] == "python":
        assert command[1] == "-m"
        assert (member / command[2] / "__main__.py").is_file(), command
    else:
        assert command[0] in project.get("scripts", {}), f"{command[0]} is not a script of {package}"


def test_the_service_images_expose_the_ports_the_manifests_use() -> None:
    for image, port in (("metadata", "50051"), ("artifacts", "50052"), ("web", "8080")):
        exposed = [args for op, args in _instructions(DOCKER / f"{image}.Dockerfile") if op == "EXPOSE"]
        assert exposed == [port], image


class _Health:
    """A TLS gRPC server with the stock health servicer, as the services run it."""

    def __init__(self, ca: PrivateCa):
        self.pair = ca.server(dns=("modelreg-metadata", "localhost"))
        self.servicer = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        credentials = grpc.ssl_server_credentials(
            [(self.pair.key_file.read_bytes(), self.pair.cert_file.read_bytes())]
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)

    def probe(self, *args: str, cert_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {"MODELREG_TLS_CERT_FILE": str(cert_file or self.pair.cert_file), "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, str(PROBE), "--port", str(self.port), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env=env,
        )


@pytest.fixture
def tls_health(tmp_path: Path) -> Iterator[tuple[_Health, PrivateCa]]:
    ca = PrivateCa(tmp_path / "ca")
    server = _Health(ca)
    server.server.start()
    try:
        yield server, ca
    finally:
        server.server.stop(None)


def test_the_tls_health_probe_passes_while_serving_and_fails_otherwise(
    tls_health: tuple[_Health, PrivateCa], tmp_path: Path
) -> None:
    server, ca = tls_health
    service = "modelregistry.v1.MetadataService"
    server.servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    assert server.probe("--ca", str(ca.ca_file), "--service", service).returncode == 0
    assert server.probe("--ca", str(ca.ca_file)).returncode == 0  # "" is SERVING by default

    server.servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    refused = server.probe("--ca", str(ca.ca_file), "--service", service)
    assert refused.returncode == 1
    assert "NOT_SERVING" in refused.stderr

    # A certificate from another CA is not trusted: the probe checks what clients would check.
    stranger = PrivateCa(tmp_path / "other", name="another CA")
    assert server.probe("--ca", str(stranger.ca_file)).returncode == 1

    # Nothing listening.
    server.server.stop(None)
    assert server.probe("--ca", str(ca.ca_file), "--timeout", "1").returncode == 1


def test_the_health_probe_checks_a_plaintext_port_for_compose() -> None:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        command = [sys.executable, str(PROBE), "--port", str(port), "--plaintext"]
        assert subprocess.run(command, check=False, timeout=30).returncode == 0
        servicer.enter_graceful_shutdown()  # what the services do on SIGTERM
        assert subprocess.run(command, check=False, timeout=30, capture_output=True).returncode == 1
    finally:
        server.stop(None)
