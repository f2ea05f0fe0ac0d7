"""The home page: namespaces with their model and version counts, recently changed models."""

from __future__ import annotations

import asyncio

from modelregistry.v1 import model_pb2
from starlette.requests import Request
from starlette.responses import Response

from modelreg_web.views import Visit, render

# Namespaces shown on the home page, and models looked at per namespace: counts beyond are "N+".
HOME_NAMESPACES = 24
MODELS_PER_NAMESPACE = 100
RECENT_MODELS = 10


async def home(request: Request) -> Response:
    visit = Visit.of(request)
    namespaces = await visit.client.list_namespaces_page(page_size=HOME_NAMESPACES)
    ids = [namespace.name.removeprefix("namespaces/") for namespace in namespaces.items]
    pages = await asyncio.gather(
        *(
            visit.client.list_models_page(ns, order_by="update_time desc", page_size=MODELS_PER_NAMESPACE)
            for ns in ids
        )
    )
    rows: list[dict[str, object]] = []
    recent: list[model_pb2.Model] = []
    for namespace, ns, page in zip(namespaces.items, ids, pages, strict=True):
        rows.append(
            {
                "id": ns,
                "namespace": namespace,
                "models": len(page.items),
                "more_models": bool(page.next_page_token),
                # Version numbers are never reused, so the latest numbers add up to the versions
                # ever registered (deleted ones included): a count without listing any version.
                "versions": sum(model.latest_version_number for model in page.items),
            }
        )
        recent.extend(page.items[:RECENT_MODELS])
    recent.sort(key=lambda model: (model.update_time.seconds, model.update_time.nanos), reverse=True)
    return render(
        request,
        "home.html",
        {
            "title": "Models",
            "namespaces": rows,
            "more_namespaces": bool(namespaces.next_page_token),
            "recent": recent[:RECENT_MODELS],
        },
        session=visit.session,
    )
