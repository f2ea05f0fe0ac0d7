"""The home page: the caller's own namespaces and every namespace a page at a time, each with its
model and version counts; the models changed most recently anywhere, from the audit trail.

A registry shared by many teams has hundreds of namespaces: the ones the caller holds a role in
come first (where people work), the full list pages by keyset like every other list, and
"recently changed" reads the newest events, not the first namespaces' models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from modelreg_api.errors import NotFound, PermissionDenied
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import event_pb2, model_pb2
from starlette.requests import Request
from starlette.responses import Response

from modelreg_web.views import Visit, render

# Namespaces per page, and models looked at per namespace: counts beyond are "N+".
HOME_NAMESPACES = 24
MODELS_PER_NAMESPACE = 100
RECENT_MODELS = 10
RECENT_EVENTS = 200  # newest events read to find the recently changed models


async def home(request: Request) -> Response:
    visit = Visit.of(request)
    token = request.query_params.get("page_token", "")
    identity, namespaces, recent = await asyncio.gather(
        visit.client.whoami(),
        visit.client.list_namespaces_page(page_size=HOME_NAMESPACES, page_token=token),
        recently_changed(visit),
    )
    own = own_namespaces(identity)
    listed = [namespace.name.removeprefix("namespaces/") for namespace in namespaces.items]
    own_rows, all_rows = await asyncio.gather(
        namespace_rows(visit, own, {}),
        namespace_rows(visit, listed, {n.name.removeprefix("namespaces/"): n for n in namespaces.items}),
    )
    return render(
        request,
        "home.html",
        {
            "title": "Models",
            "own": own_rows,
            "namespaces": all_rows,
            "next_token": namespaces.next_page_token,
            "paged": bool(token),
            "recent": recent,
        },
        session=visit.session,
    )


def own_namespaces(identity: acc.CallerIdentity) -> list[str]:
    """The namespaces the caller holds a role in by name (a registry-wide role names none)."""
    found = {
        binding.parent.removeprefix("namespaces/")
        for binding in identity.bindings
        if binding.parent.startswith("namespaces/") and binding.parent != "namespaces/-"
    }
    return sorted(found)[:HOME_NAMESPACES]


async def namespace_rows(
    visit: Visit, ids: list[str], known: dict[str, model_pb2.Namespace]
) -> list[dict[str, object]]:
    async def row(ns: str) -> dict[str, object] | None:
        try:
            namespace, page = await asyncio.gather(
                _namespace(visit, ns, known),
                visit.client.list_models_page(
                    ns, order_by="update_time desc", page_size=MODELS_PER_NAMESPACE
                ),
            )
        except (NotFound, PermissionDenied):
            return None  # a binding to a namespace since deleted, or one the caller cannot read
        return {
            "id": ns,
            "namespace": namespace,
            "models": len(page.items),
            "more_models": bool(page.next_page_token),
            # Version numbers are never reused, so the latest numbers add up to the versions
            # ever registered (deleted ones included): a count without listing any version.
            "versions": sum(model.latest_version_number for model in page.items),
        }

    rows = await asyncio.gather(*(row(ns) for ns in ids))
    return [found for found in rows if found is not None]


async def _namespace(visit: Visit, ns: str, known: dict[str, model_pb2.Namespace]) -> model_pb2.Namespace:
    return known[ns] if ns in known else await visit.client.get_namespace(ns)


async def recently_changed(visit: Visit) -> list[model_pb2.Model]:
    """The models of the newest events the caller may see, newest first, each once."""
    events = await visit.client.list_events_page(page_size=RECENT_EVENTS, newest_first=True)
    names = _distinct_models(events.items)[:RECENT_MODELS]

    async def get(name: str) -> model_pb2.Model | None:
        try:
            return await visit.client.get_model(name)
        except (NotFound, PermissionDenied):
            return None  # deleted since, or no longer readable

    models = await asyncio.gather(*(get(name) for name in names))
    return [model for model in models if model is not None]


def _distinct_models(events: Sequence[event_pb2.Event]) -> list[str]:
    seen: dict[str, None] = {}
    for event in events:
        name = _model_ref(event.resource)
        if name:
            seen.setdefault(name, None)
    return list(seen)


def _model_ref(resource: str) -> str:
    """`namespaces/a/models/b/...` -> `a/b`; "" for a namespace's own events."""
    parts = resource.split("/")
    if len(parts) >= 4 and parts[0] == "namespaces" and parts[2] == "models":
        return f"{parts[1]}/{parts[3]}"
    return ""
