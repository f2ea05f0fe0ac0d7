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

import json
import os
from pathlib import Path

import pytest
from modelreg_artifacts.server import SERVICE_NAME as ARTIFACT_SERVICE
from modelreg_metadata.server import SERVICE_NAME as METADATA_SERVICE

from tests.deploy.manifests import (
    K8S,
    OVERLAYS,
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
    validate_all,
)
from tests.deploy.service_code import (
    OTEL_STANDARD,
    SERVICES,
    ServiceCode,
    load,
    names_in_code,
    refused,
    required_variables,
)


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
    _, container = _service_container(docs, service)
    env = container_env(docs, container).values
    missing = sorted(name for name in required_variables(service.loader) if not env.get(name, "").strip())
    assert not missing, f"{service.deployment} lacks required variables {missing}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_the_code_accepts_the_values_the_manifests_set(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    pod, container = _service_container(docs, service)
    env = container_env(docs, container).values
    problems = refused(service.loader, env, _mount_paths(pod, container))
    assert not problems, f"{service.deployment}: the service would refuse to start:\n" + "\n".join(problems)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.container)
def test_every_variable_the_manifests_set_is_read_by_the_code(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    _, container = _service_container(docs, service)
    env = container_env(docs, container).values
    known = names_in_code() | OTEL_STANDARD
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
    if any(p["name"] == "metrics" for p in container["ports"]):
        # The code's default metrics address is on loopback: a scraped port must be set explicitly.
        assert "MODELREG_METRICS_ADDR" in env, f"{service.deployment} exposes metrics it does not serve"
        assert container_port(container, "metrics") == port_of(env["MODELREG_METRICS_ADDR"])
    # The Service sends each named port to the container's port of that name.
    [svc] = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == service.deployment]
    names = {p["name"] for p in container["ports"]}
    for svc_port in svc["spec"]["ports"]:
        assert svc_port["targetPort"] in names, (
            f"Service {service.deployment} targets {svc_port['targetPort']}"
        )


@pytest.mark.parametrize("service", SERVICES[:2], ids=lambda s: s.container)
def test_readiness_asks_for_the_grpc_service_the_server_registers(
    overlay: tuple[str, list[Doc]], service: ServiceCode
) -> None:
    _, docs = overlay
    served = {"modelreg-metadata": METADATA_SERVICE, "modelreg-artifacts": ARTIFACT_SERVICE}[
        service.deployment
    ]
    _, container = _service_container(docs, service)
    probe = container["readinessProbe"]
    if "grpc" in probe:
        assert probe["grpc"].get("service") == served
    else:  # the TLS exec probe (deploy/docker/grpc_health_probe.py)
        command = probe["exec"]["command"]
        assert command[command.index("--service") + 1] == served


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


def test_the_kubernetes_jwt_component_gives_both_services_the_issuers_they_read(tmp_path: Path) -> None:
    """components/kubernetes-jwt on top of prod, as an operator adds it once the JWKS is in."""
    component = K8S / "components" / "kubernetes-jwt"
    overlay_dir = tmp_path / "prod-with-jwt"
    overlay_dir.mkdir()
    (overlay_dir / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'prod', overlay_dir)}]\n"
        f"components: [{os.path.relpath(component, overlay_dir)}]\n"
    )
    docs = render(overlay_dir, outside_root=True)
    validate_all(docs)
    issuers = json.loads((component / "issuers.json").read_text())
    assert all("modelreg" in issuer["audiences"] and issuer["kubernetes"] for issuer in issuers)
    for service in SERVICES[:2]:
        assert service.loader is not None
        pod, container = _service_container(docs, service)
        env = container_env(docs, container).values
        issuers_file = Path(env["MODELREG_OIDC_ISSUERS_FILE"])
        assert str(issuers_file.parent) in _mount_paths(pod, container)
        assert not refused(service.loader, env, _mount_paths(pod, container))
        [volume] = [v for v in pod["volumes"] if v["name"] == "oidc-issuers"]
        named(docs, "ConfigMap", volume["configMap"]["name"])
