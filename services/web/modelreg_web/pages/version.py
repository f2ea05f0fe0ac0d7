"""The version page: state and reviews, lineage graph, params, metrics and their histories,
signature, files with download links, and the `modelreg pull` command."""

from __future__ import annotations

import asyncio
from typing import Any

from modelregistry.v1 import model_pb2
from starlette.requests import Request
from starlette.responses import Response

from modelreg_web import present
from modelreg_web.present import Refusal
from modelreg_web.roles import abilities
from modelreg_web.views import PageError, Visit, render

HISTORY_METRICS = 12  # metrics whose history is charted on the page
HISTORY_POINTS = 5000  # points per history


def version_number(request: Request) -> int:
    raw = request.path_params["n"]
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise PageError(404, "Not found", "Versions are numbered 1, 2, 3, ...")
    return int(raw)


def lineage_graph(version: model_pb2.ModelVersion) -> dict[str, Any]:
    """The nodes around the version, for the small SVG: inputs on the left, the version right."""
    lineage = version.lineage
    inputs: list[dict[str, str]] = []
    if lineage.parent_model_version:
        inputs.append(
            {
                "kind": "parent version",
                "label": present.short_name(lineage.parent_model_version),
                "href": present.ui_path(lineage.parent_model_version),
            }
        )
    for dataset in lineage.datasets:
        label = dataset.uri + (f" ({dataset.role})" if dataset.role else "")
        inputs.append(
            {
                "kind": "dataset",
                "label": label,
                "detail": present.short_digest(dataset.digest),
                "href": present.safe_url(dataset.uri),
            }
        )
    if lineage.source_commit or lineage.source_repository:
        inputs.append(
            {
                "kind": "code",
                "label": lineage.source_repository or "source",
                "detail": lineage.source_commit[:12],
                "href": present.safe_url(lineage.source_repository),
            }
        )
    if lineage.training_run_id or lineage.training_run_url:
        inputs.append(
            {
                "kind": "training run",
                "label": lineage.training_run_id or "run",
                "href": present.safe_url(lineage.training_run_url),
            }
        )
    for index, node in enumerate(inputs):
        node["y"] = str(20 + index * 56)
        node.setdefault("detail", "")
    height = max(80, 20 + len(inputs) * 56)
    return {"inputs": inputs, "height": height, "center": height // 2}


async def version(request: Request, *, refusal: Refusal | None = None, status: int = 200) -> Response:
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    number = version_number(request)
    ref = f"{ns}/{model_id}/{number}"
    found, identity = await asyncio.gather(visit.client.get_version(ref), visit.client.whoami())
    version_path = f"/n/{ns}/m/{model_id}/v/{number}"
    return render(
        request,
        "version.html",
        {
            "title": ref,
            "ns": ns,
            "model_id": model_id,
            "version": found,
            "version_path": version_path,
            "params": present.struct_dict(found.params),
            "history_metrics": sorted(found.metrics)[:HISTORY_METRICS],
            "lineage": lineage_graph(found),
            "pull_command": f"modelreg pull {ref} ./{model_id}-{number}",
            "can": abilities(identity, ns),
            "principal_is_creator": identity.principal == found.create_actor,
            "refusal": refusal,
        },
        status=status,
        session=visit.session,
    )
