"""`make run` as a developer or a supervisor sees it: a process that dies is named and restarted,
and SIGINT or SIGTERM, to make or to the stack, stops everything cleanly.

Each test runs its own stack (`python -m modelreg_local`, or the Makefile's `run` recipe with its
prerequisites marked up to date, so nothing is built) on a data dir and ports of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV
from modelreg_local.stack import ADMIN_TOKEN_FILE, METADATA_SERVICE
from modelreg_local.stores import free_port, parse_environment
from modelregistry.v1 import metadata_service_pb2, metadata_service_pb2_grpc

from tests.integration.test_local_stores import _require_ferretdb
from tests.support import bearer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
START_SECONDS = 120.0


def _sigint_default() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored, and so would make;
    # a supervisor's child does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """One `make run` (or its Python process) in the background, with its output in a file."""

    def __init__(self, command: list[str], root: Path):
        self.data = root / "data"
        self.output = root / "output.log"
        self.metadata = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "MODELREG_DATA_DIR": str(self.data),
            METADATA_ADDR_ENV: self.metadata,
            ARTIFACT_ADDR_ENV: f"127.0.0.1:{free_port()}",
            "MODELREG_LOCAL_S3_PORT": str(free_port()),
            # `make run` also starts the web UI (8080 by default): a free port, like the others.
            "MODELREG_WEB_ADDR": f"127.0.0.1:{free_port()}",
        }
        if parse_environment(env).endpoints() is not None or parse_environment(env).mongodb_uri:
            pytest.skip("external stores are configured: the stack would run no store process")
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_sigint_default,  # noqa: PLW1509 - one call, before any thread of the child
                start_new_session=True,
            )
        self.wait_for("modelreg is running", START_SECONDS)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text())
            if found is not None:
                return found
            if self.process.poll() is not None:
                pytest.fail(
                    f"the stack exited ({self.process.returncode}) before {pattern!r}:\n{self.text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {timeout:g} s:\n{self.text()}")
            time.sleep(0.2)

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout:g} s after being told to stop:\n{self.text()}")

    def store_pid(self, store: str) -> int:
        return int((self.data / store / "server.pid").read_text())

    def end(self) -> None:
        """Whatever a test left running (its own processes only: the stack's session)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[list[Running]]:
    _require_ferretdb()
    started: list[Running] = []
    yield started
    for running in started:
        running.end()


def _serves(running: Running) -> None:
    """The metadata service is SERVING and answers a call that reads its database."""
    token = (running.data / ADMIN_TOKEN_FILE).read_text().strip()
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(running.metadata) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest(service=METADATA_SERVICE), timeout=2).status != (
            health_pb2.HealthCheckResponse.SERVING
        ):
            assert time.monotonic() < deadline, running.text()
            time.sleep(0.2)
        metadata = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        metadata.ListNamespaces(
            metadata_service_pb2.ListNamespacesRequest(), metadata=bearer(token), timeout=10
        )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_killed_store_and_a_killed_service_are_named_and_restarted(
    launch: list[Running], tmp_path: Path
) -> None:
    running = Running([str(PYTHON), "-m", "modelreg_local"], tmp_path)
    launch.append(running)
    # The banner lists the web UI's metrics beside the two services' (free ports here), served.
    urls = running.wait_for(r"metrics +(http://\S+) +(http://\S+) +(http://\S+)", 5).groups()
    with urllib.request.urlopen(urls[2], timeout=5) as reply:  # noqa: S310 - the stack's loopback URL
        assert b"modelreg_http_requests_in_flight" in reply.read()

    ferretdb = running.store_pid("ferretdb")
    os.kill(ferretdb, signal.SIGKILL)
    running.wait_for(rf"FerretDB \(pid {ferretdb}\) died: killed by SIGKILL", 30)
    running.wait_for(r"FerretDB is running again \(pid \d+\)", 60)
    assert running.store_pid("ferretdb") != ferretdb
    _serves(running)  # the services reconnected by themselves

    artifacts = int(
        subprocess.run(
            ["pgrep", "-P", str(running.process.pid), "-f", "modelreg_artifacts"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
    )
    os.kill(artifacts, signal.SIGKILL)
    running.wait_for(rf"the artifacts service \(pid {artifacts}\) died: killed by SIGKILL", 30)
    running.wait_for(r"the artifacts service is running again", 60)

    stores = [running.store_pid("ferretdb"), running.store_pid("seaweedfs")]
    running.process.send_signal(signal.SIGTERM)
    assert running.wait_exit() == 0
    assert "stopped." in running.text()
    assert all(_gone(pid) for pid in stores), running.text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_make_run_stops_everything_on_sigint_or_sigterm_to_make(
    launch: list[Running], tmp_path: Path, signum: signal.Signals
) -> None:
    # The real recipe; `-o` marks its prerequisites up to date, so nothing is built here.
    running = Running(["make", "--no-print-directory", "-o", "venv", "-o", "ferretdb", "run"], tmp_path)
    launch.append(running)
    stores = [running.store_pid("ferretdb"), running.store_pid("seaweedfs")]

    running.process.send_signal(signum)  # to make, not to its recipe
    running.wait_exit()
    assert "stopped." in running.text()
    assert all(_gone(pid) for pid in stores), running.text()
    assert not (running.data / "ferretdb" / "server.pid").exists()
