"""The containers of deploy/k8s/examples/jobs, started on this machine as a kubelet would start them.

The tests run the command and arguments the manifests give a container, read from the YAML, so a
manifest that drifts from the CLI fails them. What a kubelet supplies is simulated, and only that:

- the image's entry point: the CLI image runs `modelreg` (this virtualenv's console script);
- volumes: a directory per volume, shared by the pod's containers, at the container's mount paths
  (every argument and variable that starts with a mount path is rewritten to the directory);
- a projected service-account token: a file holding the credential the test gives the pod;
- `env` (with `$(VAR)` expansion as Kubernetes does it), downward-API fields the test supplies,
  and `envFrom` ConfigMaps of the example, in which the test replaces only the cluster's
  addresses and TLS setting by the local stack's.

One more substitution keeps tests apart on the shared stack: the example's model
(`fraud/detector`) becomes a model of the test's own in the same namespace.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from modelreg import Client
from modelreg_local.stack import LocalStack

from tests.integration.credentials import ready_credential_for

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "examples" / "jobs"
CLI_IMAGE = "modelreg/cli:"
CLI_ENTRY_POINT = Path(sys.executable).with_name("modelreg")
EXAMPLE_MODEL = "fraud/detector"
NAMESPACE = "fraud"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def documents() -> list[dict[str, Any]]:
    """Every object of the example, in the kustomization's order."""
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    found = []
    for resource in kustomization["resources"]:
        found += [doc for doc in yaml.safe_load_all((EXAMPLES / resource).read_text()) if doc]
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"the example has {len(matches)} {kind} named {name}"
    found: dict[str, Any] = matches[0]
    return found


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is `$`, others stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


class Pod:
    """One pod of a workload (a Deployment or a Job) with its volumes under `root`."""

    def __init__(self, kind: str, name: str, root: Path, *, model: str, token: str) -> None:
        self.workload = find(kind, name)
        self.spec: dict[str, Any] = self.workload["spec"]["template"]["spec"]
        self.root = root
        self.model = model
        self.volumes = {volume["name"]: root / volume["name"] for volume in self.spec.get("volumes", [])}
        for volume in self.spec.get("volumes", []):
            directory = self.volumes[volume["name"]]
            directory.mkdir(parents=True, exist_ok=True)
            for source in (volume.get("projected") or {}).get("sources", []):
                if "serviceAccountToken" in source:
                    assert source["serviceAccountToken"]["audience"] == "modelreg"
                    (directory / source["serviceAccountToken"]["path"]).write_text(token + "\n")

    def container(self, name: str) -> dict[str, Any]:
        containers = self.spec.get("initContainers", []) + self.spec["containers"]
        matches = [c for c in containers if c["name"] == name]
        assert len(matches) == 1, f"no container {name} in {self.workload['metadata']['name']}"
        found: dict[str, Any] = matches[0]
        return found

    def local(self, container: dict[str, Any], text: str) -> str:
        """`text` with a mount path prefix replaced by its volume's directory."""
        for mount in sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"])):
            path = mount["mountPath"].rstrip("/")
            if text == path or text.startswith(path + "/"):
                return str(self.volumes[mount["name"]]) + text[len(path) :]
        return text

    def env(
        self, name: str, base: Mapping[str, str], cluster: Mapping[str, str], fields: Mapping[str, str]
    ) -> dict[str, str]:
        """The container's environment: `base` (PATH...), its ConfigMaps with the `cluster`
        values replaced, then its `env` entries; `fields` are the downward API's values."""
        container = self.container(name)
        env = dict(base)
        for source in container.get("envFrom", []):
            data = find("ConfigMap", source["configMapRef"]["name"])["data"]
            assert set(cluster) <= set(data), "the example's ConfigMap no longer sets these"
            env.update({**data, **cluster})
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = self.local(container, expand(variable["value"], env))
            else:
                env[variable["name"]] = fields[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def argv(self, name: str, env: Mapping[str, str]) -> list[str]:
        """The command the container runs, as the CLI image's entry point receives it."""
        container = self.container(name)
        assert container["image"].startswith(CLI_IMAGE), container["image"]
        assert "command" not in container, "the CLI image's entry point is `modelreg`"
        args = [self.local(container, expand(arg, env)) for arg in container["args"]]
        assert any(arg.startswith(EXAMPLE_MODEL) for arg in args), "the example's model moved"
        args = [
            self.model + arg[len(EXAMPLE_MODEL) :] if arg.startswith(EXAMPLE_MODEL) else arg for arg in args
        ]
        return [str(CLI_ENTRY_POINT), *args]

    def volume(self, name: str) -> Path:
        directory: Path = self.volumes[name]
        return directory


def pod_credential(stack: LocalStack, service_account: str, role: str) -> str:
    """What the projected token stands for here: an API token of `serviceaccount:ml/<name>` with
    `role` in the example's namespace (a JWT of the cluster's issuer is the same to the SDK)."""
    principal = f"serviceaccount:ml/{service_account}"
    return ready_credential_for(stack.addresses.artifacts, principal, role, NAMESPACE)


def cluster(stack: LocalStack) -> dict[str, str]:
    """What the example's ConfigMap says about the cluster's registry, for the local stack."""
    return {
        "MODELREG_METADATA_ADDR": stack.addresses.metadata,
        "MODELREG_ARTIFACT_ADDR": stack.addresses.artifacts,
        "MODELREG_TLS": "false",
    }


def base_env(root: Path) -> dict[str, str]:
    """A container's own environment: nothing from the developer's (no MODELREG_*, no login)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "xdg-cache"),
        "MODELREG_DATA_DIR": str(root / "no-data"),
    }


def admin_client(stack: LocalStack, cache: Path) -> Client:
    """The test's own view of the registry, as a global admin (not what the jobs act as)."""
    token = ready_credential_for(stack.addresses.artifacts, "user:jobs-admin@example.com", "admin")
    return Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=token,
        cache_dir=cache,
    )
