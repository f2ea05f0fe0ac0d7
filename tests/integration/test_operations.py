"""What operators rely on: health, reflection, graceful shutdown, configuration errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg_local.stack import ARTIFACT_SERVICE, METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port

from tests.support import credential_for

pytestmark = pytest.mark.integration

GRPCURL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "grpcurl"


def grpcurl(*args: str) -> str:
    assert GRPCURL.exists(), "grpcurl is missing: run `make tools`"
    result = subprocess.run(
        [str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("which", ["metadata", "artifacts"])
def test_reflection_lists_services_without_local_protos(stack: LocalStack, which: str) -> None:
    address = stack.addresses.metadata if which == "metadata" else stack.addresses.artifacts
    listed = set(grpcurl(address, "list").split())
    own = METADATA_SERVICE if which == "metadata" else ARTIFACT_SERVICE
    assert {own, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed


def test_grpcurl_can_call_a_method_through_reflection(stack: LocalStack) -> None:
    out = grpcurl(
        "-d",
        '{"parent": "namespaces/ops", "model_id": "via-grpcurl"}',
        "-H",
        f"authorization: Bearer {credential_for('serviceaccount:ops/bot')}",
        stack.addresses.metadata,
        f"{METADATA_SERVICE}/CreateModel",
    )
    created = json.loads(out)
    assert created["name"] == "namespaces/ops/models/via-grpcurl"
    assert created["createActor"] == "serviceaccount:ops/bot"


@pytest.mark.parametrize("service", ["", METADATA_SERVICE])
def test_health_reports_serving(stack: LocalStack, service: str) -> None:
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_turns_health_not_serving_then_exits_cleanly(stack: LocalStack, tmp_path: Path) -> None:
    assert stack.metadata is not None
    address = f"127.0.0.1:{free_port()}"
    extra = ServiceProcess(
        "metadata-extra",
        module="modelreg_metadata",
        service=METADATA_SERVICE,
        address=address,
        env={**stack.metadata.env, "MODELREG_METADATA_ADDR": address},
        log_dir=tmp_path,
    )
    extra.start()
    try:
        extra.wait_healthy()
        with grpc.insecure_channel(address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=METADATA_SERVICE), timeout=30
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            assert extra.pid is not None
            os.kill(extra.pid, 15)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        extra.stop(timeout=30)
        assert extra.exited() == 0
        events = [
            json.loads(line)["event"]
            for line in extra.log_path.read_text().splitlines()
            if line.startswith("{")
        ]
        # The drain ends the calls still open (the health watch above): their `rpc` lines may
        # follow "shutting down"; nothing else may, and "stopped" is the last word.
        assert "shutting down" in events
        after = events[events.index("shutting down") + 1 :]
        assert after[-1] == "stopped"
        assert set(after[:-1]) <= {"rpc"}
    finally:
        extra.kill()


@pytest.mark.parametrize(
    ("module", "env", "expected"),
    [
        ("modelreg_metadata", {"MODELREG_MONGODB_URI": ""}, "MODELREG_MONGODB_URI is required"),
        ("modelreg_metadata", {"MODELREG_MONGODB_URI": "http://x"}, "must start with mongodb://"),
        (
            "modelreg_metadata",
            {"MODELREG_METADATA_ADDR": "nowhere"},
            "MODELREG_METADATA_ADDR='nowhere' is not host:port",
        ),
        ("modelreg_artifacts", {"MODELREG_S3_PART_MIB": "1"}, "MODELREG_S3_PART_MIB=1 is outside [5, 5120]"),
        ("modelreg_artifacts", {"MODELREG_S3_ENDPOINT": ""}, "MODELREG_S3_ENDPOINT is required"),
        ("modelreg_artifacts", {"MODELREG_MONGODB_URI": ""}, "MODELREG_MONGODB_URI is required"),
        (
            "modelreg_artifacts",
            {"MODELREG_UPLOAD_TTL_SECONDS": "0"},
            "MODELREG_UPLOAD_TTL_SECONDS=0.0 is outside",
        ),
    ],
)
def test_invalid_configuration_stops_at_start_with_a_clear_message(
    stack: LocalStack, module: str, env: dict[str, str], expected: str
) -> None:
    assert stack.metadata is not None
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={**stack.metadata.env, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
