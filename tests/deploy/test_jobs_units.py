"""The deployment jobs' rules that need no stack: what the controller reads from a Deployment and
from an event, where it finds the API server, and the push's metadata files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
from google.protobuf import struct_pb2
from modelreg.controller.kubernetes import KubernetesApi, KubernetesUnavailable
from modelreg.controller.rollout import (
    ALIAS_ANNOTATION,
    SEQUENCE_ANNOTATION,
    VERSION_ANNOTATION,
    Move,
    Rollout,
    move_of,
)
from modelreg.jobs import lineage_from, metrics_from
from modelreg_api.names import parse_alias_name
from modelregistry.v1 import event_pb2

from tests.deploy.job_pods import CLI_ENTRY_POINT, documents, expand, find

ALIAS = parse_alias_name("namespaces/fraud/models/detector/aliases/production")


def deployment(annotations: dict[str, str], template: dict[str, str]) -> dict[str, object]:
    return {
        "metadata": {"name": "server", "resourceVersion": "7", "annotations": annotations},
        "spec": {"template": {"metadata": {"annotations": template}}},
    }


def test_a_deployment_never_rolled_out_has_no_version_and_no_cursor() -> None:
    assert Rollout.of({"metadata": {"resourceVersion": "1"}}, ALIAS) == Rollout(None, 0, "1")


def test_the_cursor_counts_only_for_the_alias_it_was_written_for() -> None:
    ours = {SEQUENCE_ANNOTATION: "41", ALIAS_ANNOTATION: str(ALIAS)}
    assert Rollout.of(deployment(ours, {VERSION_ANNOTATION: "3"}), ALIAS) == Rollout(3, 41, "7")
    theirs = {**ours, ALIAS_ANNOTATION: "namespaces/fraud/models/detector/aliases/canary"}
    assert Rollout.of(deployment(theirs, {VERSION_ANNOTATION: "3"}), ALIAS) == Rollout(3, 0, "7")
    garbled = {SEQUENCE_ANNOTATION: "soon", ALIAS_ANNOTATION: str(ALIAS)}
    assert Rollout.of(deployment(garbled, {VERSION_ANNOTATION: "x"}), ALIAS) == Rollout(None, 0, "7")


def event(action: str, resource: str = str(ALIAS), **after: float) -> event_pb2.Event:
    changed = struct_pb2.Struct()
    changed.update(after)
    return event_pb2.Event(sequence=9, action=action, resource=resource, after=changed)


def test_only_this_alias_moving_or_going_is_a_move() -> None:
    assert move_of(event("ALIAS_MOVED", version_number=4), ALIAS) == Move(9, 4)
    assert move_of(event("ALIAS_CREATED", version_number=1), ALIAS) == Move(9, 1)
    assert move_of(event("ALIAS_DELETED"), ALIAS) == Move(9, None)
    # Another alias, another model, another action, a write that changed only the actor.
    assert (
        move_of(event("ALIAS_MOVED", str(ALIAS).replace("production", "staging"), version_number=4), ALIAS)
        is None
    )
    assert (
        move_of(event("ALIAS_MOVED", str(ALIAS).replace("detector", "other"), version_number=4), ALIAS)
        is None
    )
    assert move_of(event("ALIAS_PROTECTED"), ALIAS) is None
    assert move_of(event("ALIAS_MOVED"), ALIAS) is None


def test_the_api_server_comes_from_the_pods_environment() -> None:
    api = KubernetesApi.in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert api.base_url == "https://10.0.0.1:6443"
    assert str(api.token_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert (
        KubernetesApi.in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1"}).base_url == "https://[fd00::1]:443"
    )
    given = KubernetesApi.in_cluster({}, base_url="http://127.0.0.1:8001/", token_file=Path("t"))
    assert (given.base_url, given.token_file) == ("http://127.0.0.1:8001", Path("t"))
    with pytest.raises(KubernetesUnavailable, match="KUBERNETES_SERVICE_HOST"):
        KubernetesApi.in_cluster({})


def test_an_unreachable_api_server_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    api = KubernetesApi("http://127.0.0.1:9", token, None, timeout=2)
    with pytest.raises(KubernetesUnavailable):
        api.get("/apis/apps/v1/namespaces/ml/deployments/x")
    with pytest.raises(KubernetesUnavailable, match="service-account token"):
        KubernetesApi("http://127.0.0.1:9", tmp_path / "missing", None).get("/")


def test_metrics_and_lineage_files_are_checked() -> None:
    assert metrics_from({"auc": 0.9, "n": 3}) == {"auc": 0.9, "n": 3.0}
    for bad in ([0.9], {"auc": "high"}, {"auc": True}, {"auc": float("nan")}):
        with pytest.raises(ValueError, match=r"JSON object|finite number"):
            metrics_from(bad)
    lineage = {
        "source_commit": "abc",
        "datasets": [{"uri": "s3://d", "digest": "sha256:00", "role": "train"}],
    }
    assert lineage_from(lineage) == lineage
    with pytest.raises(ValueError, match="datasetz"):
        lineage_from({"datasetz": []})


def test_a_bad_metadata_file_is_a_usage_error_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": "high"}))
    (tmp_path / "lineage.json").write_text(json.dumps({"source_commit": 5}))
    (tmp_path / "token").write_text("mrt_unused_secret")
    for option, path in (("--metrics-file", "metrics.json"), ("--lineage-file", "lineage.json")):
        done = subprocess.run(
            [str(CLI_ENTRY_POINT), "push", "fraud/detector", "model", option, path,
             "--metadata-addr", "127.0.0.1:9", "--artifact-addr", "127.0.0.1:9", "--token-file", "token"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"modelreg: error: {option}: "), done.stderr


def test_variables_expand_as_kubernetes_expands_them() -> None:
    env = {"JOB_UID": "u-1", "EMPTY": ""}
    assert expand("$(JOB_UID)", env) == "u-1"
    assert expand("id-$(JOB_UID)-$(EMPTY)", env) == "id-u-1-"
    assert expand("$(UNSET) $$(JOB_UID)", env) == "$(UNSET) $(JOB_UID)"


def test_the_example_manifests_are_valid_kubernetes_1_33_objects() -> None:
    # Strict: an unknown (misspelt) field fails too. The k8s branch's test renders every
    # kustomization; this one keeps the jobs' examples checked on their own.
    for document in documents():
        kubernetes_validate.validate(document, "1.33.0", strict=True)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents())
    assert ("Role", "rollout-controller") in kinds
    role = find("Role", "rollout-controller")
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["fraud-model-server"],
         "verbs": ["get", "patch"]}
    ]  # fmt: skip
    controller = find("Deployment", "rollout-controller")["spec"]
    assert (controller["replicas"], controller["strategy"]["type"]) == (1, "Recreate")


def test_the_example_pods_run_locked_down_and_sized() -> None:
    """As the services' own pods (tests/deploy/test_manifests.py on the overlays); only the
    controller holds a Kubernetes API token, for its get/patch."""
    workloads = [d for d in documents() if d["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 3
    for workload in workloads:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is (name == "Deployment/rollout-controller"), name
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where} {bound}"
