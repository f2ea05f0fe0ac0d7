"""The rollout controller of deploy/k8s/examples/jobs, run on the local stack against a fake API server.

The controller is the example's container command (`modelreg follow ...`, read from the YAML),
started as a process with the service account's registry token in a file, following the real
registry through a proxy that the test can cut. Kubernetes is not on this machine, so the API
server is a small HTTPS server holding the one Deployment: GET, and merge PATCH with the
`resourceVersion` precondition and the bearer token check a real one makes. Only the three
`--kubernetes-*` settings the pod takes from its environment are pointed at it.
"""

from __future__ import annotations

import copy
import json
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from modelreg import Client
from modelreg_local.stack import LocalStack

from tests.deploy.job_pods import NAMESPACE, Pod, admin_client, base_env, cluster, find, pod_credential
from tests.integration.cutting_proxy import CuttingProxy
from tests.support import unique
from tests.tls_certs import PrivateCa

pytestmark = pytest.mark.integration

SERVING = "fraud-model-server"
VERSION = "modelreg.dev/version"
SEQUENCE = "modelreg.dev/sequence"
# "Within a few seconds" of the move, on a busy 2-core machine.
PROMPT_SECONDS = 5.0
# How long nothing must happen to count as "no patch".
QUIET_SECONDS = 2.0


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


class FakeKubernetes:
    """An API server with one Deployment, over HTTPS with a certificate of `ca`."""

    def __init__(self, deployment: dict[str, Any], token_file: Path, ca: PrivateCa) -> None:
        self.deployment = copy.deepcopy(deployment)
        self.deployment["metadata"]["resourceVersion"] = "1"
        meta = self.deployment["metadata"]
        self.path = f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/{meta['name']}"
        self.token_file = token_file
        self.patches: list[dict[str, Any]] = []
        self.refused: list[int] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def refuse(self, status: int, reason: str) -> None:
                fake.refused.append(status)
                status_object = {"kind": "Status", "status": "Failure", "reason": reason, "message": reason}
                self.answer(status, {**status_object, "code": status})

            def authorized(self) -> bool:
                expected = f"Bearer {fake.token_file.read_text().strip()}"
                if self.headers.get("Authorization") != expected:
                    self.refuse(HTTPStatus.UNAUTHORIZED, "Unauthorized")
                    return False
                if self.path != fake.path:
                    self.refuse(HTTPStatus.NOT_FOUND, "NotFound")
                    return False
                return True

            def do_GET(self) -> None:
                if self.authorized():
                    with fake._lock:
                        self.answer(HTTPStatus.OK, fake.deployment)

            def do_PATCH(self) -> None:
                if not self.authorized():
                    return
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    self.refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
                    return
                patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    current = fake.deployment["metadata"]["resourceVersion"]
                    wanted = (patch.get("metadata") or {}).get("resourceVersion")
                    if wanted is not None and wanted != current:
                        self.refuse(HTTPStatus.CONFLICT, "Conflict")
                        return
                    fake.deployment = merged(fake.deployment, patch)
                    fake.deployment["metadata"]["resourceVersion"] = str(int(current) + 1)
                    fake.patches.append(patch)
                    self.answer(HTTPStatus.OK, fake.deployment)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        keys = ca.server("kubernetes")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(keys.cert_file, keys.key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKubernetes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def scale(self, replicas: int) -> None:
        """Somebody else writes the Deployment (an autoscaler): its resourceVersion changes."""
        with self._lock:
            self.deployment["spec"]["replicas"] = replicas
            version = int(self.deployment["metadata"]["resourceVersion"])
            self.deployment["metadata"]["resourceVersion"] = str(version + 1)

    def versions(self) -> list[str]:
        """The version of each rollout (pod template patch), in order."""
        with self._lock:
            return [p["spec"]["template"]["metadata"]["annotations"][VERSION] for p in self.patches]

    def annotation(self, key: str) -> str:
        with self._lock:
            return str(self.deployment["metadata"].get("annotations", {}).get(key, ""))


class SwitchableProxy(CuttingProxy):
    """The cutting proxy, cut on demand: every open connection is reset at once."""

    def __init__(self, target: str) -> None:
        super().__init__(target, cut_every=1 << 62, cuts=0)

    def __enter__(self) -> SwitchableProxy:
        super().__enter__()
        return self

    def cut_now(self) -> None:
        def abort() -> None:
            for writer in list(self._open):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(abort)


class Controller:
    """The controller process; its log lines are kept for failure messages."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.log: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader = threading.Thread()

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line.rstrip("\n"))

    def _ended(self) -> None:
        assert self.process is not None
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self._ended()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.running():
            self.process.terminate()
        self._ended()


def wait_for(condition: Callable[[], bool], what: str, controller: Controller, timeout: float) -> float:
    """Seconds until `condition` held; fails with the controller's log after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert controller.running(), "\n".join(controller.log)
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {what}\ncontroller log:\n" + "\n".join(controller.log))
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def registry(stack: LocalStack, tmp_path: Path) -> Iterator[Client]:
    with admin_client(stack, tmp_path / "admin-cache") as client:
        yield client


def last_sequence(registry: Client, alias: str) -> int:
    return max((event.sequence for event in registry.list_events(resource=alias)), default=0)


def test_the_rollout_controller_follows_production_and_resumes_from_its_cursor(
    stack: LocalStack, registry: Client, tmp_path: Path
) -> None:
    model = f"{NAMESPACE}/{unique('detector')}"
    other = f"{NAMESPACE}/{unique('other')}"
    for number in (1, 2, 3):
        files = tmp_path / f"v{number}"
        files.mkdir()
        (files / "weights.bin").write_bytes(f"weights of version {number}".encode())
        registry.push(model, files)
    registry.push(other, tmp_path / "v1")
    registry.set_alias(model, "production", 1)

    token = pod_credential(stack, "rollout-controller", "viewer")
    pod = Pod("Deployment", "rollout-controller", tmp_path / "pod", model=model, token=token)
    kubernetes_token = tmp_path / "kubernetes-token"
    kubernetes_token.write_text("sa-token-1\n")
    ca = PrivateCa(tmp_path / "pki")
    with (
        FakeKubernetes(find("Deployment", SERVING), kubernetes_token, ca) as api,
        SwitchableProxy(stack.addresses.metadata) as proxy,
    ):
        env = pod.env(
            "follow", base_env(tmp_path), {**cluster(stack), "MODELREG_METADATA_ADDR": proxy.address}, {}
        )
        env.update(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(api.port))
        argv = pod.argv("follow", env)
        assert argv[1:] == ["follow", f"{model}@production", "--deployment", f"ml/{SERVING}"]
        argv += ["--kubernetes-token-file", str(kubernetes_token), "--kubernetes-ca-file", str(ca.ca_file)]
        controller = Controller(argv, env)
        controller.start()
        try:
            follow(
                registry,
                model,
                other=other,
                api=api,
                proxy=proxy,
                controller=controller,
                kubernetes_token=kubernetes_token,
            )
        finally:
            controller.stop()


def follow(
    registry: Client,
    model: str,
    *,
    other: str,
    api: FakeKubernetes,
    proxy: SwitchableProxy,
    controller: Controller,
    kubernetes_token: Path,
) -> None:
    production = f"{model}@production"

    def rolled_out(*versions: int) -> Callable[[], bool]:
        return lambda: api.versions() == [str(v) for v in versions]

    # First start: the Deployment has no annotation yet; it is rolled out to where production is.
    wait_for(rolled_out(1), "the first rollout, to version 1", controller, 30)
    assert api.annotation(SEQUENCE) == str(last_sequence(registry, production))

    # Production moves: the Deployment follows within seconds.
    registry.set_alias(model, "production", 2)
    took = wait_for(rolled_out(1, 2), "the rollout to version 2", controller, 30)
    assert took < PROMPT_SECONDS, f"{took:.1f} s"

    # Other aliases and other models' production are none of its business. The Kubernetes token
    # rotates meanwhile (the kubelet rewrites the file): the next request reads the new one. And
    # the Deployment is scaled behind the controller's back: its patch meets a conflict, it reads
    # the Deployment again and patches that (keeping the new replica count).
    registry.set_alias(model, "staging", 3)
    registry.set_alias(other, "staging", 1)
    registry.set_alias(other, "production", 1)
    kubernetes_token.write_text("sa-token-2\n")
    api.scale(5)
    registry.set_alias(model, "production", 3)
    wait_for(rolled_out(1, 2, 3), "the rollout to version 3", controller, 30)
    assert api.refused == [HTTPStatus.CONFLICT]
    assert api.deployment["spec"]["replicas"] == 5

    # The event stream breaks and production moves meanwhile: the controller reconnects after its
    # last event and rolls out the move it has not seen.
    proxy.cut_now()
    registry.set_alias(model, "production", 1)
    wait_for(rolled_out(1, 2, 3, 1), "the rollout after the stream broke", controller, 30)

    # Killed (no chance to save anything) and restarted after a move made while it was down: it
    # resumes from the cursor on the Deployment, rolls that move out once and nothing twice.
    controller.kill()
    registry.set_alias(model, "production", 2)
    controller.start()
    wait_for(rolled_out(1, 2, 3, 1, 2), "the rollout of the move made while it was down", controller, 30)
    assert api.annotation(SEQUENCE) == str(last_sequence(registry, production))

    # Killed again; production moves away and back while it is down. Restarted, it sees both
    # moves: the Deployment has that version already, so no rollout at all.
    controller.kill()
    registry.set_alias(model, "production", 3)
    registry.set_alias(model, "production", 2)
    controller.start()
    wait_for(lambda: any("nothing to roll out" in line for line in controller.log), "seen", controller, 30)
    time.sleep(QUIET_SECONDS)
    assert api.versions() == ["1", "2", "3", "1", "2"]

    # Production is deleted: nothing to roll out, the Deployment keeps version 2, the controller
    # keeps following (and rolls out production's return).
    registry.delete_alias(model, "production")
    wait_for(
        lambda: any("was deleted" in line for line in controller.log), "the deletion seen", controller, 30
    )
    assert api.versions() == ["1", "2", "3", "1", "2"]
    registry.set_alias(model, "production", 3)
    wait_for(rolled_out(1, 2, 3, 1, 2, 3), "the rollout after production returned", controller, 30)
    # Every request carried the current token; the only refusal was that conflict.
    assert api.refused == [HTTPStatus.CONFLICT]
