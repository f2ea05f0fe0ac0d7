"""deploy/compose/compose.yaml, checked offline (no Docker engine here): the services are there,
each service's own settings loader accepts its environment, ports agree with the listen
addresses, and nothing starts before what it needs is healthy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.manifests import REPO, port_of
from tests.deploy.service_code import SERVICES, ServiceCode, refused, required_variables

COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
# compose service -> what must be healthy (or done) before it starts
NEEDS = {
    "metadata": {"mongodb": "service_healthy", "credentials": "service_completed_successfully"},
    "artifacts": {"mongodb": "service_healthy", "minio": "service_healthy", "metadata": "service_healthy"},
    "web": {"metadata": "service_healthy", "artifacts": "service_healthy"},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return parsed


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_the_laptop_stack_has_the_stores_both_services_and_the_web_ui(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"mongodb", "minio", "metadata", "artifacts", "web"}
    for store in ("mongodb", "minio"):
        assert "healthcheck" in compose["services"][store], store
    # The services' MongoDB URI names the replica set the server is started as.
    mongodb = compose["services"]["mongodb"]
    replica_set = mongodb["command"][mongodb["command"].index("--replSet") + 1]
    uri = _environment(compose["services"]["metadata"])["MODELREG_MONGODB_URI"]
    assert f"replicaSet={replica_set}" in uri


@pytest.mark.parametrize("name", NEEDS)
def test_a_service_starts_only_after_what_it_needs(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    depends = {k: v["condition"] for k, v in service["depends_on"].items()}
    assert depends == NEEDS[name]
    assert "healthcheck" in service


@pytest.mark.parametrize("code", SERVICES, ids=lambda s: s.container)
def test_the_services_code_accepts_the_compose_environment(
    compose: dict[str, Any], code: ServiceCode
) -> None:
    service = compose["services"][code.container]
    env = _environment(service)
    listen = env.get(code.listen_env) or code.default_listen
    published = {str(p).rsplit(":", 1)[-1] for p in service["ports"]}
    assert str(port_of(listen)) in published, f"{code.container} listens on {listen}, publishes {published}"
    missing = sorted(v for v in required_variables(code.loader) if not env.get(v))
    assert not missing, f"{code.container} lacks {missing}"
    volumes = [str(v).split(":")[1] for v in service.get("volumes", [])]
    problems = refused(code.loader, env, volumes)
    assert not problems, f"{code.container} would refuse to start:\n" + "\n".join(problems)


def test_the_healthchecks_probe_the_port_the_service_listens_on(compose: dict[str, Any]) -> None:
    for code in SERVICES[:2]:
        service = compose["services"][code.container]
        test = service["healthcheck"]["test"]
        assert test[test.index("--port") + 1] == str(port_of(_environment(service)[code.listen_env]))
