"""Compare 2-10 versions of a model: params with differences marked, metrics in one table, and
one metric's histories overlaid (`?metric=`, default the first metric)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from modelreg_web.pages.browse import query
from modelreg_web.views import PageError, Visit, render

MIN_VERSIONS, MAX_VERSIONS = 2, 10


def compared_numbers(request: Request) -> list[int]:
    numbers: list[int] = []
    for value in request.query_params.getlist("v"):
        for raw in value.split(","):
            part = raw.strip()
            if not part.isdigit() or len(part) > 18 or int(part) < 1:
                raise PageError(400, "Cannot compare", f"{part[:20]!r} is not a version number.")
            if int(part) not in numbers:
                numbers.append(int(part))
    if not MIN_VERSIONS <= len(numbers) <= MAX_VERSIONS:
        raise PageError(
            400,
            "Cannot compare",
            f"Pick {MIN_VERSIONS} to {MAX_VERSIONS} different versions (?v=1&v=2); {len(numbers)} given.",
        )
    return numbers


async def compare(request: Request) -> Response:
    visit = Visit.of(request)
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    numbers = compared_numbers(request)
    refs = [f"{ns}/{model_id}/{n}" for n in numbers]
    comparison = await visit.client.compare_versions(*refs)
    metric_keys = [row.key for row in comparison.metrics]
    metric = query(request, "metric") or (metric_keys[0] if metric_keys else "")
    return render(
        request,
        "compare.html",
        {
            "title": f"{ns}/{model_id}: compare {', '.join(f'v{n}' for n in numbers)}",
            "ns": ns,
            "model_id": model_id,
            "numbers": numbers,
            "comparison": comparison,
            "metric": metric,
            "metric_keys": metric_keys,
            "history_src": f"/n/{ns}/m/{model_id}/compare/history?"
            + "&".join(f"v={n}" for n in numbers)
            + f"&metric={quote(metric, safe='')}",
        },
        session=visit.session,
    )
