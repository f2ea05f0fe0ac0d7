"""The namespace page (models, filter, keyset pages) and the model page (card, aliases and their
history, the versions table with picked columns, a metric across versions)."""

from __future__ import annotations

import asyncio
from typing import Any

from modelreg.errors import InvalidArgument
from modelreg.results import Page
from modelregistry.v1 import event_pb2, model_pb2
from starlette.requests import Request
from starlette.responses import Response

from modelreg_web import present
from modelreg_web.present import FilterError, Refusal
from modelreg_web.roles import abilities
from modelreg_web.views import Visit, render

PAGE_SIZE = 50
MAX_ALIASES = 50
ALIAS_HISTORY = 50
MAX_COLUMNS = 20
MAX_QUERY_CHARS = 2000
# A model page lists the newest versions first unless the user orders them otherwise.
NEWEST_FIRST = "number desc"
_ALIAS_ACTIONS = ("ALIAS_CREATED", "ALIAS_MOVED", "ALIAS_DELETED", "ALIAS_PROTECTED", "ALIAS_UNPROTECTED")
MODEL_ORDERS = {
    "model_id": "name",
    "update_time desc": "recently changed",
    "create_time desc": "newest",
    "create_time": "oldest",
}


def query(request: Request, name: str) -> str:
    return request.query_params.get(name, "")[:MAX_QUERY_CHARS].strip()


async def listing(fetch: Any, text: str, order_by: str) -> tuple[Page[Any], FilterError | None]:
    """A page from `fetch(filter)`; a filter (or order) the service refuses is shown under the
    filter box, at its position, instead."""
    try:
        return await fetch(text), None
    except InvalidArgument as exc:
        if "order_by" in exc.field:
            return Page([]), present.filter_error(order_by, exc)
        if exc.reason != "INVALID_FILTER" and "filter" not in exc.field:
            raise
        return Page([]), present.filter_error(text, exc)


async def namespace(request: Request) -> Response:
    visit = Visit.of(request)
    ns = request.path_params["ns"]
    filter_text = query(request, "filter")
    order_by = query(request, "order_by") or "model_id"
    token = query(request, "page_token")

    async def fetch(text: str) -> Page[model_pb2.Model]:
        return await visit.client.list_models_page(
            ns, filter=text, order_by=order_by, page_size=PAGE_SIZE, page_token=token
        )

    found, (page, problem) = await asyncio.gather(
        visit.client.get_namespace(ns), listing(fetch, filter_text, order_by)
    )
    return render(
        request,
        "namespace.html",
        {
            "title": ns,
            "ns": ns,
            "namespace": found,
            "models": page.items,
            "next_page_token": page.next_page_token,
            "filter": filter_text,
            "filter_error": problem,
            "order_by": order_by,
            "orders": MODEL_ORDERS,
        },
        session=visit.session,
    )


def picked_columns(request: Request) -> list[str]:
    """`?columns=metrics.acc,params.lr` (also repeated `columns=`, as checkboxes send them)."""
    columns: list[str] = []
    for value in request.query_params.getlist("columns"):
        for raw in value.split(","):
            column = raw.strip()[:200]
            if column.partition(".")[0] in ("metrics", "params", "tags") and column not in columns:
                columns.append(column)
    return columns[:MAX_COLUMNS]


def available_columns(versions: list[model_pb2.ModelVersion], params: list[dict[str, Any]]) -> list[str]:
    found: dict[str, None] = {}
    for version, values in zip(versions, params, strict=True):
        found.update((f"metrics.{key}", None) for key in sorted(version.metrics))
        found.update((f"params.{path}", None) for path, _ in present.flatten(values))
        found.update((f"tags.{key}", None) for key in sorted(version.tags))
    return sorted(found)[:200]


async def alias_history(request: Request) -> Response:
    """One alias's changes (created, moved, protected, ...), a page at a time, oldest first.

    A page of its own, which the model page loads when its history is opened: reading the trail
    costs more than the rest of the model page (on FerretDB it scans the trail), so the model
    page never waits for it.
    """
    visit = Visit.of(request)
    ns, model_id, alias_id = (request.path_params[k] for k in ("ns", "model", "alias"))
    alias = await visit.client.get_alias(f"{ns}/{model_id}", alias_id)
    token = query(request, "page_token")
    page = await visit.client.list_events_page(
        resource=alias.name, actions=_ALIAS_ACTIONS, page_size=ALIAS_HISTORY, page_token=token
    )
    return render(
        request,
        "alias_history.html",
        {
            "title": f"{ns}/{model_id}@{alias_id}: history",
            "ns": ns,
            "model_id": model_id,
            "alias_id": alias_id,
            "alias": alias,
            "changes": [_alias_change(event) for event in page.items],
            "next_page_token": page.next_page_token,
        },
        session=visit.session,
    )


def _alias_change(event: event_pb2.Event) -> dict[str, Any]:
    after = present.struct_dict(event.after)
    target = after.get("version_number")
    return {
        "time": event.time,
        "action": event.action,
        "actor": event.actor,
        "to": present.plain(target) if target is not None else "",
    }


async def model(request: Request, *, refusal: Refusal | None = None, status: int = 200) -> Response:
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    ref = f"{ns}/{model_id}"
    filter_text = query(request, "filter")
    order_by = query(request, "order_by")
    token = query(request, "page_token")

    async def fetch(text: str) -> Page[model_pb2.ModelVersion]:
        return await visit.client.list_versions_page(
            ref, filter=text, order_by=order_by or NEWEST_FIRST, page_size=PAGE_SIZE, page_token=token
        )

    async def aliases() -> list[model_pb2.Alias]:
        page = await visit.client.list_aliases_page(ref, page_size=MAX_ALIASES)
        return list(page.items)

    found, alias_list, (page, problem), identity = await asyncio.gather(
        visit.client.get_model(ref), aliases(), listing(fetch, filter_text, order_by), visit.client.whoami()
    )
    versions = list(page.items)
    params = [present.struct_dict(version.params) for version in versions]
    columns = picked_columns(request)
    metric_keys = sorted({key for version in versions for key in version.metrics})
    metric = query(request, "metric") or (metric_keys[0] if metric_keys else "")
    chart = {
        "title": metric,
        "x": "version",
        "series": [
            {
                "name": metric,
                "points": [
                    [v.number, present.finite(v.metrics[metric])]
                    for v in sorted(versions, key=lambda v: v.number)
                    if metric in v.metrics
                ],
            }
        ],
    }
    return render(
        request,
        "model.html",
        {
            "title": ref,
            "ns": ns,
            "model_id": model_id,
            "model": found,
            "aliases": alias_list,
            "versions": list(zip(versions, params, strict=True)),
            "next_page_token": page.next_page_token,
            "filter": filter_text,
            "filter_error": problem,
            "order_by": order_by,
            "columns": columns,
            "available_columns": available_columns(versions, params),
            "metric": metric,
            "metric_keys": metric_keys,
            "chart_json": present.json_for_script(chart),
            "can": abilities(identity, ns),
            "refusal": refusal,
        },
        status=status,
        session=visit.session,
    )
