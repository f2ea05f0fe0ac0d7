"""Registry content for the web UI's benchmark and screenshots, created through the public API.

`Seeder` writes through the metadata service's gRPC API (and the SDK for pushes with files) as
any client would; nothing touches the stores. Values are deterministic (a seeded random
generator), so two runs draw the same charts and tables (only the times differ).

- `bench_namespace`: N versions spread over a few models of one namespace, created concurrently;
  versions already there are counted and kept, so a second run adds only what is missing.
- `history_model`: a model whose versions each have long metric histories (the compare page's
  worst case: 10 versions x 5,000 steps).
- `demo`: a small, realistic namespace for the screenshots: models with descriptions and model
  cards, versions with params, metrics and histories, lineage, files, aliases (one protected),
  a submitted and an approved version.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format, struct_pb2
from modelreg.aio import AsyncClient
from modelreg_api.channels import ClientTls, open_channel
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2

T = TypeVar("T")
POINTS_PER_CALL = 1000  # LogMetricsRequest's limit
TEAMS = ("vision", "search", "ads", "fraud")


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(values, message)
    return message


def curve(rng: random.Random, steps: int, start: float, end: float, noise: float) -> list[float]:
    """A training curve from `start` towards `end` (exponential approach) with noise."""
    rate = rng.uniform(3.0, 6.0) / max(steps, 1)
    return [end + (start - end) * math.exp(-rate * step) + rng.gauss(0.0, noise) for step in range(steps)]


async def bounded(concurrency: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs at most `concurrency` at a time; results in the jobs' order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


class Seeder:
    """Writes models and versions as the principal of `token` (an admin of the namespaces)."""

    def __init__(self, metadata_addr: str, artifact_addr: str, token: str) -> None:
        self.auth = (("authorization", f"Bearer {token}"),)
        self.channel = open_channel(metadata_addr, ClientTls(mode="off"))
        self.stub = metadata_service_pb2_grpc.MetadataServiceStub(self.channel)
        self.client = AsyncClient(metadata_addr=metadata_addr, artifact_addr=artifact_addr, token=token)

    async def close(self) -> None:
        await self.client.close()
        await self.channel.close(grace=None)

    async def model(self, namespace: str, model_id: str, **fields: Any) -> model_pb2.Model:
        """The model, created with `fields` (Model message fields) unless it exists."""
        name = f"namespaces/{namespace}/models/{model_id}"
        try:
            return await self.stub.GetModel(md.GetModelRequest(name=name), metadata=self.auth)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            request = md.CreateModelRequest(
                parent=f"namespaces/{namespace}", model_id=model_id, model=model_pb2.Model(**fields)
            )
            return await self.stub.CreateModel(request, metadata=self.auth)

    async def version(
        self, model: str, *, params: dict[str, Any] | None = None, **fields: Any
    ) -> model_pb2.ModelVersion:
        draft = model_pb2.ModelVersion(params=_struct(params or {}), **fields)
        request = md.CreateModelVersionRequest(parent=model, model_version=draft, request_id=uuid.uuid4().hex)
        return await self.stub.CreateModelVersion(request, metadata=self.auth)

    async def count_versions(self, model: str) -> int:
        """How many versions `model` has (numbers are gap-free, so the highest number)."""
        request = md.ListModelVersionsRequest(parent=model, order_by="number desc", page_size=1)
        reply = await self.stub.ListModelVersions(request, metadata=self.auth)
        return reply.model_versions[0].number if reply.model_versions else 0

    async def version_counts(self, namespace: str, models: int) -> list[int]:
        """The version count of each benchmark model `model-0`... of `namespace`."""
        names = [f"namespaces/{namespace}/models/model-{i}" for i in range(models)]
        return await bounded(4, [functools.partial(self.count_versions, m) for m in names])

    async def history(self, version: str, key: str, values: Sequence[float]) -> None:
        """Log `values` as the history of metric `key`, steps 0..n-1, a call per 1,000 points."""
        for start in range(0, len(values), POINTS_PER_CALL):
            points = [  # 4 digits, as a training job logs them (and the summaries read)
                model_pb2.MetricPoint(key=key, value=round(value, 4), step=start + offset)
                for offset, value in enumerate(values[start : start + POINTS_PER_CALL])
            ]
            request = md.LogMetricsRequest(model_version=version, points=points, request_id=uuid.uuid4().hex)
            await self.stub.LogMetrics(request, metadata=self.auth)

    # The benchmark's namespace

    async def bench_namespace(
        self, namespace: str, versions: int, *, models: int = 10, concurrency: int = 32
    ) -> int:
        """`versions` versions over `models` models of `namespace` (`model-0`...); returns how many
        this call created (0 when a previous run left them all)."""
        names = [f"namespaces/{namespace}/models/model-{i}" for i in range(models)]
        create = functools.partial(self.model, namespace, description="benchmark")
        await bounded(4, [functools.partial(create, f"model-{i}") for i in range(models)])
        have = await bounded(4, [functools.partial(self.count_versions, m) for m in names])
        jobs: list[Callable[[], Awaitable[model_pb2.ModelVersion]]] = []
        for index, model in enumerate(names):
            wanted = versions // models + (1 if index < versions % models else 0)
            for number in range(have[index] + 1, wanted + 1):
                jobs.append(functools.partial(self.version, model, **bench_fields(number)))
        await bounded(concurrency, jobs)
        return len(jobs)

    async def history_model(
        self, namespace: str, model_id: str, *, versions: int = 10, steps: int = 5000, concurrency: int = 8
    ) -> list[int]:
        """A model with `versions` versions, each with `loss` and `accuracy` histories of `steps`
        steps; kept when a previous run made it. Returns the version numbers."""
        model = await self.model(namespace, model_id, description="metric histories for the compare page")
        have = await self.count_versions(model.name)

        async def one(number: int) -> None:
            version = await self.version(model.name, **bench_fields(number))
            local = random.Random(f"{model_id}/{number}")
            await self.history(version.name, "loss", curve(local, steps, 2.3, 0.2 + 0.02 * number, 0.03))
            await self.history(version.name, "accuracy", curve(local, steps, 0.1, 0.9 - 0.01 * number, 0.01))

        await bounded(concurrency, [functools.partial(one, n) for n in range(have + 1, versions + 1)])
        return list(range(1, versions + 1))

    # The screenshots' demo

    async def demo(self, namespace: str, workdir: Path, approver: AsyncClient) -> dict[str, Any]:
        """A small, realistic namespace; `approver` (another principal: four eyes) approves a
        version. Returns what the screenshots visit: the model and its version numbers."""
        rng = random.Random(namespace)
        model = await self.model(
            namespace,
            "churn-classifier",
            display_name="Churn classifier",
            description="Predicts which subscribers cancel within 30 days.",
            owner="user:maria@example.com",
            model_card=MODEL_CARD,
            labels={"team": "growth", "tier": "1"},
        )
        for model_id, description in OTHER_MODELS:
            other = await self.model(namespace, model_id, description=description)
            for number in range(1, rng.randint(2, 5)):
                await self.version(other.name, **bench_fields(number))
        ref = f"{namespace}/churn-classifier"
        numbers: list[int] = []
        for number in range(1, 5):
            source = workdir / f"v{number}"
            (source / "weights").mkdir(parents=True, exist_ok=True)
            (source / "weights" / "model.safetensors").write_bytes(rng.randbytes(48_000 + 1000 * number))
            (source / "config.json").write_text(f'{{"layers": {2 + number}, "hidden": 256}}\n')
            auc = round(0.86 + 0.02 * number + rng.uniform(-0.005, 0.005), 4)
            parent = f"{model.name}/versions/{number - 1}" if number > 1 else ""
            pushed = await self.client.push(
                ref,
                source,
                description=f"Gradient-boosted trees, {100 * number} rounds.",
                params={
                    "optimizer": {"name": "adam", "lr": round(0.1 / number, 4), "betas": [0.9, 0.999]},
                    "trees": 100 * number,
                    "max_depth": 6 + number % 2,
                    "features": {"window_days": 30, "categorical": ["plan", "country"]},
                },
                metrics={"auc": auc, "f1": round(auc - 0.08, 4), "latency_ms": 11.0 + number},
                tags={"dataset": "subscribers-2026-11", "framework": "xgboost"},
                lineage=demo_lineage(rng, number, parent),
                signature={
                    "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, 64]}],
                    "outputs": [{"name": "churn_probability", "dtype": "float32", "shape": [-1]}],
                },
            )
            version = pushed.version
            numbers.append(version.number)
            local = random.Random(f"demo/{number}")
            await self.history(version.name, "loss", curve(local, 300, 0.69, 0.35 - 0.02 * number, 0.008))
            await self.history(version.name, "auc", curve(local, 300, 0.5, auc, 0.004))
        approved = f"{ref}/{numbers[-2]}"
        await self.client.submit_for_review(approved, comment="Ready for production.")
        await approver.approve_version(approved, comment="Checked the eval slices: good to go.")
        await self.client.set_alias(ref, "production", numbers[-2])
        await self.client.protect_alias(
            ref, "production", metric_gate="metrics.auc >= 0.9", not_worse={"auc": "max"}
        )
        return {"model": ref, "versions": numbers}

    async def demo_activity(self, model: str, version: int) -> None:
        """The demo's last steps, done while the home page's live feed watches: stage the newest
        version and submit it for review."""
        await self.client.set_alias(model, "staging", version)
        await self.client.submit_for_review(f"{model}/{version}", comment="More rounds, better AUC.")


OTHER_MODELS = (
    ("fraud-scorer", "Scores card transactions for fraud in real time."),
    ("search-ranker", "Re-ranks the top 100 search results."),
    ("image-tagger", "Tags product photos with 1,200 labels."),
)


def demo_lineage(rng: random.Random, number: int, parent: str) -> dict[str, Any]:
    return {
        "training_run_id": f"run-{4100 + number}",
        "source_repository": "git@example.com:growth/churn.git",
        "source_commit": rng.randbytes(20).hex(),
        "datasets": [
            {
                "uri": f"s3://data/subscribers/2026-11/{role}",
                "digest": f"sha256:{rng.randbytes(32).hex()}",
                "role": role,
            }
            for role in ("train", "eval")
        ],
        "parent_model_version": parent,
    }


def bench_fields(number: int) -> dict[str, Any]:
    """A version like a training job registers it: tags, nested params, four metrics, lineage."""
    rng = random.Random(number)
    return {
        "description": f"nightly training #{number}",
        "tags": {"team": TEAMS[number % len(TEAMS)], "dataset": f"events-2026-{1 + number % 12:02d}"},
        "params": {
            "optimizer": {"name": "adam", "lr": round(rng.uniform(1e-4, 1e-1), 5)},
            "batch_size": rng.choice((32, 64, 128, 256)),
            "layers": [256, 128, rng.choice((32, 64))],
        },
        "metrics": {
            "auc": round(rng.uniform(0.7, 0.99), 4),
            "f1": round(rng.uniform(0.6, 0.95), 4),
            "loss": round(rng.uniform(0.1, 0.6), 4),
            "latency_ms": round(rng.uniform(5, 40), 2),
        },
        "lineage": model_pb2.Lineage(training_run_id=f"run-{number}", source_commit=f"{number:040x}"),
    }


MODEL_CARD = """\
## Intended use

Ranks active subscribers by the probability that they cancel within **30 days**, so the
retention team can reach out first. Not for pricing decisions.

## Training data

- `subscribers-2026-11`: 2.1 M subscribers, 18 months of usage events
- Labels: cancellation within 30 days of the snapshot

## Evaluation

| slice | AUC | F1 |
|---|---|---|
| all | 0.94 | 0.86 |
| new (< 90 days) | 0.91 | 0.82 |

## Limitations

Under-predicts churn for annual plans in their last month.
"""
