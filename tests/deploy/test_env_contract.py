"""The manifests and the code agree on the environment and the ports.

Each service's settings are loaded by its own code (`<Settings>.from_environment`) from the
environment a rendered Deployment gives its container, so the test fails when:
- the code requires a variable (it says `X is required` on an empty environment) that the
  manifests do not set;
- a value the manifests set is refused by the code (a malformed address, an unknown store
  semantics, plaintext off loopback without MODELREG_ALLOW_PLAINTEXT, ...); problems about files
  that only exist in the pod (mounted Secrets) are the only ones allowed;
- a MODELREG_* variable the manifests set is one no code reads (a typo is silently ignored);
- the port the service listens on (its setting: the manifests' value or the code's default) is
  not the containerPort the probes and the Service use.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modelreg_api.addresses import (
    ARTIFACT_ADDR_ENV,
    DEFAULT_ARTIFACT_ADDR,
    DEFAULT_METADATA_ADDR,
    METADATA_ADDR_ENV,
)
from modelreg_api.channels import TLS_ENV, ClientTls, TlsConfigError
from modelreg_artifacts.config import METADATA_TLS_ENV, ArtifactSettings
from modelreg_artifacts.server import SERVICE_NAME as ARTIFACT_SERVICE
from modelreg_common.config import ConfigError
from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.server import SERVICE_NAME as METADATA_SERVICE

from tests.deploy.manifests import (
    K8S,
    OVERLAYS,
    REPO,
    Doc,
    all_containers,
    container_env,
    container_port,
    named,
    of_kind,
    pod_spec,
    port_of,
    probe_port,
    render,
)

Loader = Callable[[Mapping[str, str]], Any]

# Read by code landing on other branches of this round; allowed while the code does not name
# them yet (once it does, the static scan below finds them and this entry is redundant).
PENDING = {
    "MODELREG_METRICS_ADDR": "modelreg_common/observability (issue 15, metrics)",
    "MODELREG_WEB_ADDR": "services/web (issue 13)",
    "MODELREG_WEB_SESSION_KEY": "services/web (issue 13)",
}
# Standard OpenTelemetry variables, read by the OpenTelemetry SDK itself.
OTEL_STANDARD = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    }
)
_REQUIRED = re.compile(r"^([A-Z][A-Z0-9_]+) is required")
_NAME_LITERAL = re.compile(r"[\"']((?:MODELREG|OTEL)_[A-Z0-9_]+)[\"']")


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable the code looked up."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _web_loader() -> Loader | None:
    """The web UI's settings loader (services/web/modelreg_web/config.py), once that exists."""
    try:
        module = importlib.import_module("modelreg_web.config")
    except ModuleNotFoundError:
        return None
    for value in vars(module).values():
        loader = getattr(value, "from_environment", None)
        if isinstance(value, type) and callable(loader) and value.__module__ == module.__name__:
            return loader  # type: ignore[no-any-return]
    raise AssertionError("modelreg_web.config has no settings class with from_environment")


@dataclass(frozen=True)
class ServiceCode:
    deployment: str
    container: str
    loader: Loader | None
    port_name: str
    listen_env: str
    default_listen: str


SERVICES = (
    ServiceCode(
        "modelreg-metadata",
        "metadata",
        MetadataSettings.from_environment,
        "grpc",
        METADATA_ADDR_ENV,
        DEFAULT_METADATA_ADDR,
    ),
    ServiceCode(
        "modelreg-artifacts",
        "artifacts",
        ArtifactSettings.from_environment,
        "grpc",
        ARTIFACT_ADDR_ENV,
        DEFAULT_ARTIFACT_ADDR,
    ),
    ServiceCode("modelreg-web", "web", _web_loader(), "http", "MODELREG_WEB_ADDR", "127.0.0.1:8080"),
)


def load(loader: Loader, env: Mapping[str, str]) -> tuple[Any, list[str], set[str]]:
    """(settings or None, the problems the code found, the variables it read)."""
    recording = RecordingEnv(env)
    try:
        settings = loader(recording)
    except ConfigError as exc:
        return None, list(exc.problems), recording.read
    return settings, [], recording.read


def required_variables(loader: Loader) -> set[str]:
    _, problems, _ = load(loader, {})
    return {m.group(1) for p in problems if (m := _REQUIRED.match(p))}


def names_in_code() -> set[str]:
    """Every MODELREG_*/OTEL_* name the services, the API package and the SDK spell out."""
    roots = [
        REPO / "services",
        REPO / "api" / "python" / "modelreg_api",
        REPO / "clients" / "python" / "modelreg",
    ]
    names: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            names.update(_NAME_LITERAL.findall(path.read_text()))
    # Client TLS variables are a prefix plus suffixes (modelreg_api.channels.ClientTls).
    for prefix in (TLS_ENV, METADATA_TLS_ENV):
        recording = RecordingEnv({})
        with contextlib.suppress(TlsConfigError):
            ClientTls.from_environment(recording, prefix=prefix)
        names.update(recording.read)
    return names


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(K8S / "overlays" / request.param)


def _service_container(docs: list[Doc], service: ServiceCode) -> tuple[Doc, Doc]:
    deployment = named(docs, "Deployment", service.deployment)
    pod = pod_spec(deployment)
    containers = [c for c in pod["containers"] if c["name"] == service.container]
    assert containers, f"{service.deployment} has no container {service.container}"
    return pod, containers[0]


def _mount_paths(pod: Doc, container: Doc) -> list[str]:
    return [m["mountPath"] for m in container.get("volumeMounts", [])]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_the_manifests_set_every_variable_the_code_requires(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    if service.loader is None:
        pytest.skip("services/web is not in this tree yet (issue 13)")
    _, container = _service_container(docs, service)
    env = container_env(docs, container).values
    missing = sorted(name for name in required_variables(service.loader) if not env.get(name, "").strip())
    assert not missing, f"{service.deployment} lacks required variables {missing}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_the_code_accepts_the_values_the_manifests_set(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    if service.loader is None:
        pytest.skip("services/web is not in this tree yet (issue 13)")
    pod, container = _service_container(docs, service)
    env = container_env(docs, container).values
    mounts = _mount_paths(pod, container)
    _, problems, _ = load(service.loader, env)
    # A file that only the pod has (a mounted Secret) cannot be read here; a required variable
    # that is set but whose file was unreadable is that same problem again.
    refused = [
        p
        for p in problems
        if not any(mount in p for mount in mounts)
        and not ((m := _REQUIRED.match(p)) and env.get(m.group(1), "").strip())
    ]
    assert not refused, f"{service.deployment}: the service would refuse to start:\n" + "\n".join(refused)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_every_variable_the_manifests_set_is_read_by_the_code(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    _, container = _service_container(docs, service)
    env = container_env(docs, container).values
    known = names_in_code() | set(PENDING) | OTEL_STANDARD
    if service.loader is not None:
        known |= load(service.loader, env)[2] | load(service.loader, {})[2]
    unknown = sorted(name for name in env if name not in known)
    assert not unknown, f"{service.deployment} sets variables no code reads (typos?): {unknown}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_probes_and_ports_match_the_address_the_service_listens_on(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    _, container = _service_container(docs, service)
    env = container_env(docs, container).values
    # Unset, the service listens on its code's default: a loopback address (modelreg_api.addresses),
    # which kubelet and other pods cannot reach.
    listen = env.get(service.listen_env) or service.default_listen
    port = port_of(listen)
    assert not listen.startswith(("127.", "localhost", "[::1]")), f"{service.deployment} listens on {listen}"
    assert container_port(container, service.port_name) == port
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, f"{service.deployment} has no {probe}"
        assert probe_port(container[probe]) == port, f"{service.deployment} {probe} checks another port"
    if "MODELREG_METRICS_ADDR" in env:
        assert container_port(container, "metrics") == port_of(env["MODELREG_METRICS_ADDR"])
    # The Service sends each named port to the container's port of that name.
    [svc] = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == service.deployment]
    names = {p["name"] for p in container["ports"]}
    for svc_port in svc["spec"]["ports"]:
        assert svc_port["targetPort"] in names, (
            f"Service {service.deployment} targets {svc_port['targetPort']}"
        )


def test_grpc_probes_ask_for_the_services_the_servers_register() -> None:
    docs = render(K8S / "overlays" / "dev")
    for name, served in (("modelreg-metadata", METADATA_SERVICE), ("modelreg-artifacts", ARTIFACT_SERVICE)):
        container = pod_spec(named(docs, "Deployment", name))["containers"][0]
        assert container["readinessProbe"]["grpc"].get("service") == served


def test_both_services_mount_the_same_internal_credential() -> None:
    for overlay_name in OVERLAYS:
        docs = render(K8S / "overlays" / overlay_name)
        secrets = set()
        for name in ("modelreg-metadata", "modelreg-artifacts"):
            pod = pod_spec(named(docs, "Deployment", name))
            env = container_env(docs, pod["containers"][0]).values
            token_dir = str(Path(env["MODELREG_INTERNAL_TOKEN_FILE"]).parent)
            volume = next(
                m["name"]
                for c in all_containers(pod)
                for m in c.get("volumeMounts", [])
                if m["mountPath"] == token_dir
            )
            init = [
                c
                for c in pod.get("initContainers", [])
                if any(m["name"] == volume for m in c["volumeMounts"])
            ]
            assert init, f"{name}: nothing writes {token_dir}"
            source = next(m["name"] for m in init[0]["volumeMounts"] if m["name"] != volume)
            secrets.add(next(v["secret"]["secretName"] for v in pod["volumes"] if v["name"] == source))
        assert len(secrets) == 1, (
            f"{overlay_name}: the services read different internal credentials {secrets}"
        )
