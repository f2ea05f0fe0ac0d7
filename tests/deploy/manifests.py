"""Rendering the Kustomize overlays and reading what the rendered objects say.

The tools come from `make tools` (kustomize into .tools/bin) and the lint/test groups
(hadolint, kubernetes-validate). Under CI a missing tool fails the test; elsewhere it skips.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
JOBS_EXAMPLES = K8S / "examples" / "jobs"
KUBERNETES_VERSION = "1.33.0"
# Custom resources (Prometheus Operator) have no schema in kubernetes-validate.
CRD_GROUPS = ("monitoring.coreos.com/",)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

Doc = dict[str, Any]


def tool(name: str, env_override: str) -> str:
    """The path of a tool: $<env_override>, .tools/bin, .venv/bin, then PATH."""
    candidates = [
        os.environ.get(env_override, ""),
        str(REPO / ".tools" / "bin" / name),
        str(REPO / ".venv" / "bin" / name),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (`make tools` builds it into .tools/bin)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def render(directory: Path, *, outside_root: bool = False) -> list[Doc]:
    """`kustomize build <directory>` as a list of objects; `outside_root` lets a kustomization
    (a test's own, in a temporary directory) use files outside its directory."""
    flags = ["--load-restrictor", "LoadRestrictionsNone"] if outside_root else []
    result = subprocess.run(
        [tool("kustomize", "KUSTOMIZE"), "build", *flags, str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kustomize build {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def all_containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@dataclass(frozen=True)
class ContainerEnv:
    """What a container's process sees in its environment, resolved from the rendered objects."""

    values: dict[str, str]
    # Variables whose value comes from a Secret (the stand-in or the dev overlay's example).
    from_secrets: frozenset[str]


# What an operator's Secrets hold in production, well formed; the dev overlay's own example
# Secrets are used where it renders them.
SECRET_STAND_INS = {
    ("modelreg-mongodb", "uri"): "mongodb://db-0.example.com:27017,db-1.example.com:27017/?replicaSet=rs0",
    ("modelreg-s3", "endpoint"): "s3.example.com:443",
    ("modelreg-s3", "access-key"): "AKIAEXAMPLE",
    ("modelreg-s3", "secret-key"): "example-secret-key",
    ("modelreg-web-session", "key"): "example-session-key-" + "0" * 40,
}


def _secret_value(docs: list[Doc], name: str, key: str) -> str:
    secrets = [d for d in of_kind(docs, "Secret") if d["metadata"]["name"] == name]
    if secrets:
        secret = secrets[0]
        if key in secret.get("stringData", {}):
            return str(secret["stringData"][key])
        return base64.b64decode(secret["data"][key]).decode()
    assert (name, key) in SECRET_STAND_INS, f"no stand-in for Secret {name} key {key}: add one"
    return SECRET_STAND_INS[(name, key)]


def container_env(docs: list[Doc], container: Doc) -> ContainerEnv:
    values: dict[str, str] = {}
    from_secrets: set[str] = set()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = named(docs, "ConfigMap", source["configMapRef"]["name"])
            values.update({k: str(v) for k, v in config.get("data", {}).items()})
        else:
            raise AssertionError(f"envFrom {source}: only ConfigMaps are read whole")
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = str(variable["value"])
            continue
        ref = variable["valueFrom"]
        if "secretKeyRef" in ref:
            values[variable["name"]] = _secret_value(
                docs, ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            )
            from_secrets.add(variable["name"])
        elif "configMapKeyRef" in ref:
            config = named(docs, "ConfigMap", ref["configMapKeyRef"]["name"])
            values[variable["name"]] = str(config["data"][ref["configMapKeyRef"]["key"]])
        else:
            values[variable["name"]] = "from-the-downward-api"
    return ContainerEnv(values, frozenset(from_secrets))


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def container_port(container: Doc, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name}: {ports}"
    return int(ports[name])


def probe_port(probe: Doc) -> int:
    """The port a probe checks: grpc/httpGet/tcpSocket, or `--port N` of an exec health probe."""
    for handler in ("grpc", "httpGet", "tcpSocket"):
        if handler in probe:
            return int(probe[handler]["port"])
    command = probe["exec"]["command"]
    return int(command[command.index("--port") + 1])


def validate_all(docs: list[Doc]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue  # no bundled schema: tests/deploy/test_manifests.py checks their keys
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
