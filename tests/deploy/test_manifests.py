"""Every overlay renders with kustomize and every object validates against Kubernetes 1.33's
schemas (strict: an unknown field fails); the workloads are locked down and sized; the
Prometheus Operator objects (CRDs, no bundled schema) have the keys the operator reads."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    JOBS_EXAMPLES,
    K8S,
    OVERLAYS,
    REPO,
    Doc,
    all_containers,
    container_env,
    named,
    of_kind,
    pod_spec,
    render,
    validate_all,
)

WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")
SERVICES = ("modelreg-metadata", "modelreg-artifacts", "modelreg-web")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_validates_strictly(overlay: str) -> None:
    docs = render(K8S / "overlays" / overlay)
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} >= set(SERVICES)
    validate_all(docs)


def test_the_deployment_job_examples_render_and_validate() -> None:
    docs = render(JOBS_EXAMPLES)
    assert of_kind(docs, "Job") or of_kind(docs, "Deployment")
    validate_all(docs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_locked_down_and_sized(overlay: str) -> None:
    for workload in (d for d in render(K8S / "overlays" / overlay) if d["kind"] in WORKLOADS):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] > 0, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in all_containers(pod):
            where = f"{name} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where} {bound}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_account_budget_autoscaler_and_policy(overlay: str) -> None:
    docs = render(K8S / "overlays" / overlay)
    for service in SERVICES:
        deployment = named(docs, "Deployment", service)
        pod = pod_spec(deployment)
        named(docs, "ServiceAccount", pod["serviceAccountName"])
        labels = pod_spec_labels(deployment)
        budgets = [p for p in of_kind(docs, "PodDisruptionBudget") if _selects(p["spec"]["selector"], labels)]
        assert len(budgets) == 1, f"{service}: {len(budgets)} PodDisruptionBudgets"
        policies = [n for n in of_kind(docs, "NetworkPolicy") if _selects(n["spec"]["podSelector"], labels)]
        assert policies, f"{service} has no NetworkPolicy"
        hpas = of_kind(docs, "HorizontalPodAutoscaler")
        autoscalers = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == service]
        if overlay == "dev":
            assert deployment["spec"]["replicas"] == 1
            assert not autoscalers, "dev runs one replica of each service"
        else:
            assert deployment["spec"]["replicas"] >= 3
            assert len(autoscalers) == 1
            assert autoscalers[0]["spec"]["minReplicas"] >= 3
            assert budgets[0]["spec"].get("minAvailable", 0) >= 2
            affinity = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            assert affinity[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def pod_spec_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_are_headless_for_client_side_balancing(overlay: str) -> None:
    docs = render(K8S / "overlays" / overlay)
    for service in of_kind(docs, "Service"):
        if any(p.get("appProtocol") == "grpc" for p in service["spec"]["ports"]):
            assert service["spec"].get("clusterIP") == "None", service["metadata"]["name"]
    # The clients of the services name them as round-robin targets over the headless Services.
    artifacts = pod_spec(named(docs, "Deployment", "modelreg-artifacts"))["containers"][0]
    artifacts_env = container_env(docs, artifacts)
    assert artifacts_env.values["MODELREG_METADATA_ADDR"].startswith("dns:///modelreg-metadata:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_the_services_drain(overlay: str) -> None:
    docs = render(K8S / "overlays" / overlay)
    for service in ("modelreg-metadata", "modelreg-artifacts"):
        pod = pod_spec(named(docs, "Deployment", service))
        env = container_env(docs, pod["containers"][0]).values
        # The default of MODELREG_SHUTDOWN_GRACE_SECONDS in both services' config.py is 10.
        drain = float(env.get("MODELREG_SHUTDOWN_GRACE_SECONDS", "10"))
        # Kubernetes kills at the end of the period: the drain plus time to close the clients.
        assert pod["terminationGracePeriodSeconds"] >= drain + 5, service


def test_secrets_are_referenced_never_inlined_outside_the_dev_example() -> None:
    assert not of_kind(render(K8S / "overlays" / "prod"), "Secret")
    for path in (K8S / "base").rglob("*"):
        if path.is_file():
            assert "kind: Secret" not in path.read_text(), path
    dev = (K8S / "overlays" / "dev" / "kustomization.yaml").read_text()
    assert "EXAMPLE SECRETS, FOR A DEVELOPMENT CLUSTER ONLY" in dev


def test_the_monitoring_objects_have_the_keys_the_operator_reads() -> None:
    docs = render(K8S / "overlays" / "prod")
    [monitor] = of_kind(docs, "ServiceMonitor")
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    for name in selected:
        service = named(docs, "Service", name)
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    [rules] = of_kind(docs, "PrometheusRule")
    alerts = [rule for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert alerts
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_alert_rules_use_metrics_the_services_export() -> None:
    observability = REPO / "services" / "common" / "modelreg_common" / "observability"
    web_metrics = REPO / "services" / "web" / "modelreg_web" / "metrics.py"  # the web UI's own
    sources = [*observability.rglob("*.py"), web_metrics]
    code = "\n".join(p.read_text() for p in sources)
    rules = (K8S / "components" / "monitoring" / "alert-rules.yaml").read_text()
    for metric in sorted(set(re.findall(r"\b(modelreg_[a-z_]+)", rules))):
        base = re.sub(r"_(total|bucket|count|sum)$", "", metric)
        assert f'"{base}"' in code, f"alert-rules.yaml uses {metric}, which the services do not export"
