"""Governance actions: submit, approve and reject a version; move and protect an alias.

Each is a POST with the CSRF token; success redirects back (POST-redirect-GET), a refusal shows
the page again with the service's reason and the values it compared, in plain words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from modelreg.errors import Aborted, FailedPrecondition, InvalidArgument, PermissionDenied, RegistryError
from modelreg_api.names import InvalidResourceName
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelreg_web import present
from modelreg_web.forms import read_form
from modelreg_web.pages import browse, version
from modelreg_web.views import PageError, Visit, check_csrf

MAX_COMMENT_CHARS = 2048
_REFUSED = (FailedPrecondition, PermissionDenied, InvalidArgument, Aborted)


async def _act(
    request: Request,
    action: str,
    call: Callable[[Visit, dict[str, str]], Awaitable[Any]],
    back: str,
    again: Callable[..., Awaitable[Response]],
) -> Response:
    form = await read_form(request)
    await check_csrf(request, form)
    visit = Visit.of(request)
    try:
        await call(visit, form)
    except _REFUSED as exc:
        status = 403 if isinstance(exc, PermissionDenied) else 409
        return await again(request, refusal=present.explain(exc, action), status=status)
    except InvalidResourceName as exc:
        error = RegistryError(str(exc), reason="INVALID_NAME")
        return await again(request, refusal=present.explain(error, action), status=400)
    return RedirectResponse(back, status_code=303)


def _version_ref(request: Request) -> tuple[str, str]:
    ns, model_id = request.path_params["ns"], request.path_params["model"]
    number = version.version_number(request)
    return f"{ns}/{model_id}/{number}", f"/n/{ns}/m/{model_id}/v/{number}"


def _comment(form: dict[str, str]) -> str:
    return form.get("comment", "")[:MAX_COMMENT_CHARS]


async def submit(request: Request) -> Response:
    ref, back = _version_ref(request)

    async def call(visit: Visit, form: dict[str, str]) -> Any:
        return await visit.client.submit_for_review(ref, comment=_comment(form))

    return await _act(request, "submit the version for review", call, back, version.version)


async def approve(request: Request) -> Response:
    ref, back = _version_ref(request)

    async def call(visit: Visit, form: dict[str, str]) -> Any:
        return await visit.client.approve_version(ref, comment=_comment(form))

    return await _act(request, "approve the version", call, back, version.version)


async def reject(request: Request) -> Response:
    ref, back = _version_ref(request)

    async def call(visit: Visit, form: dict[str, str]) -> Any:
        return await visit.client.reject_version(ref, comment=_comment(form))

    return await _act(request, "reject the version", call, back, version.version)


def _model_ref(request: Request) -> tuple[str, str, str]:
    """The model, the alias named in the path (`-`: the form's `alias` field), and where to go back."""
    ns, model_id, alias = (request.path_params[k] for k in ("ns", "model", "alias"))
    back = f"/n/{ns}/m/{model_id}" + (f"#alias-{alias}" if alias != "-" else "")
    return f"{ns}/{model_id}", alias, back


def _alias(path_alias: str, form: dict[str, str]) -> str:
    return form.get("alias", "").strip()[:128] if path_alias == "-" else path_alias


async def move_alias(request: Request) -> Response:
    model, path_alias, back = _model_ref(request)

    async def call(visit: Visit, form: dict[str, str]) -> Any:
        target = form.get("version", "").strip().removeprefix("v")
        if not target.isdigit() or len(target) > 18:
            raise InvalidArgument("version", f"{target[:20]!r} is not a version number")
        return await visit.client.set_alias(model, _alias(path_alias, form), int(target))

    label = "move the alias" if path_alias == "-" else f"move @{path_alias}"
    return await _act(request, label, call, back, browse.model)


def _not_worse(text: str) -> list[tuple[str, str]]:
    """`auc:max, latency_ms:min` -> pairs of metric and direction."""
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        metric, _, direction = item.strip().partition(":")
        if direction.strip().lower() not in ("max", "min"):
            raise InvalidArgument("not_worse", f"{item.strip()[:40]!r}: write metric:max or metric:min")
        pairs.append((metric.strip(), direction.strip().lower()))
    return pairs


async def protect_alias(request: Request) -> Response:
    model, path_alias, back = _model_ref(request)

    async def call(visit: Visit, form: dict[str, str]) -> Any:
        gate = form.get("metric_gate", "").strip()[:2000]
        return await visit.client.protect_alias(
            model, _alias(path_alias, form), metric_gate=gate, not_worse=_not_worse(form.get("not_worse", ""))
        )

    label = "protect the alias" if path_alias == "-" else f"protect @{path_alias}"
    try:
        return await _act(request, label, call, back, browse.model)
    except ValueError as exc:  # the SDK's own check of a direction
        raise PageError(400, "Cannot protect the alias", str(exc)[:200]) from None
