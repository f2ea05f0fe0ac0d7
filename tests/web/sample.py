"""Registry data for the web tests, made through the SDK (and LogMetrics over gRPC, which the SDK
has no method for): a model with a model card, three sealed versions with params, metrics,
metric histories, tags, lineage, a signature and files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from modelreg import Client
from modelreg_local.stack import LocalStack
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2

from tests.integration.credentials import ready_credential_for
from tests.support import ALICE, bearer, unique

NAMESPACE = "web-ui"
MODEL_CARD = """# Churn model

Predicts churn. See [the docs](https://example.com/docs).

| split | rows |
|---|---|
| train | 1000 |
"""


@dataclass
class Sample:
    namespace: str
    model_id: str
    files: dict[str, bytes]
    versions: list[int] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.model_id}"

    @property
    def path(self) -> str:
        return f"/n/{self.namespace}/m/{self.model_id}"


def client_for(stack: LocalStack, cache: Path, principal: str = ALICE, role: str = "admin") -> Client:
    return Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=ready_credential_for(stack.addresses.artifacts, principal, role),
        cache_dir=cache,
    )


def log_history(stack: LocalStack, version: str, key: str, values: list[float]) -> None:
    token = ready_credential_for(stack.addresses.artifacts, ALICE)
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        stub = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        for start in range(0, len(values), 1000):
            points = [
                model_pb2.MetricPoint(key=key, value=value, step=start + i)
                for i, value in enumerate(values[start : start + 1000])
            ]
            stub.LogMetrics(
                md.LogMetricsRequest(model_version=version, points=points, request_id=unique("log")),
                metadata=bearer(token),
                timeout=30,
            )


def make_sample(stack: LocalStack, root: Path, *, namespace: str = NAMESPACE) -> Sample:
    sample = Sample(
        namespace=namespace,
        model_id=unique("churn"),
        files={"model.bin": bytes(range(256)) * 4096, "config/settings.json": b'{"layers": 3}\n'},
    )
    files = root / "files"
    for path, data in sample.files.items():
        (files / path).parent.mkdir(parents=True, exist_ok=True)
        (files / path).write_bytes(data)
    with client_for(stack, root / "cache") as registry:
        registry.create_model(
            sample.ref, description="Churn **predictor**", owner="team-web", model_card=MODEL_CARD
        )
        for number, (accuracy, lr) in enumerate(((0.81, 0.1), (0.93, 0.01), (0.88, 0.001)), start=1):
            result = registry.push(
                sample.ref,
                files,
                params={"optimizer": {"name": "adam", "lr": lr}, "layers": 3},
                metrics={"accuracy": accuracy, "loss": 1 - accuracy},
                tags={"run": f"r{number}"},
                lineage={
                    "source_repository": "https://git.example.com/churn",
                    "source_commit": f"{number}abcdef0123456789",
                    "datasets": [{"uri": "s3://data/churn.parquet", "digest": "sha256:" + "ab" * 32}],
                    "training_run_id": f"run-{number}",
                },
                signature={"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 8]}]},
            )
            sample.versions.append(result.version.number)
            log_history(
                stack,
                result.version.name,
                "loss",
                [1.0 / (step + 1) + 0.01 * number for step in range(50)],
            )
    return sample


@dataclass
class Histories:
    """A model whose versions 1-10 have a `loss` history of HISTORY_STEPS steps each (version 1
    with a spike and a dip), and version 11 one of SHORT_STEPS steps."""

    namespace: str
    model_id: str
    logged: dict[int, list[float]]  # version number -> its loss values, step = index

    @property
    def path(self) -> str:
        return f"/n/{self.namespace}/m/{self.model_id}"

    def version_name(self, number: int) -> str:
        return f"namespaces/{self.namespace}/models/{self.model_id}/versions/{number}"


HISTORY_STEPS = 5000
SHORT_STEPS = 2000
SPIKE_STEP, DIP_STEP = 1234, 3210


def loss_curve(number: int, steps: int) -> list[float]:
    values = [round(1 / (1 + s / 200) + 0.05 * math.sin(s * (0.3 + number)), 6) for s in range(steps)]
    if number == 1:
        values[SPIKE_STEP], values[DIP_STEP] = 9.5, -4.25
    return values


def make_histories(stack: LocalStack, *, namespace: str = NAMESPACE) -> Histories:
    token = ready_credential_for(stack.addresses.artifacts, ALICE)
    histories = Histories(namespace, unique("histories"), {})
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        stub = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        model = stub.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id=histories.model_id),
            metadata=bearer(token),
            timeout=30,
        )
        for number in range(1, 12):
            version = stub.CreateModelVersion(
                md.CreateModelVersionRequest(parent=model.name, request_id=unique("create")),
                metadata=bearer(token),
                timeout=30,
            )
            assert version.number == number
            histories.logged[number] = loss_curve(number, HISTORY_STEPS if number <= 10 else SHORT_STEPS)
    for number, values in histories.logged.items():
        log_history(stack, histories.version_name(number), "loss", values)
    return histories
