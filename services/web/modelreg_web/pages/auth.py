"""Sign-in with an API token (checked with GetCallerIdentity), and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from modelreg.aio import AsyncClient
from modelreg.errors import PermissionDenied, Unauthenticated
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelreg_web.forms import read_form
from modelreg_web.sessions import SESSION_COOKIE, set_cookie
from modelreg_web.views import check_csrf, codec, render

MAX_TOKEN_CHARS = 8192


def local_path(target: str) -> str:
    """`target` when it is a path on this site, else "/" (no open redirect to another site)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _provider_context(request: Request) -> dict[str, str]:
    """The name of the sign-in provider to offer a button for ("" when none is configured)."""
    oidc = request.app.state.oidc
    return {"provider": oidc.display_name if oidc is not None else ""}


async def signin_form(request: Request) -> Response:
    return render(
        request,
        "signin.html",
        {
            "title": "Sign in",
            "next": local_path(request.query_params.get("next", "/")),
            "expired": bool(request.query_params.get("expired")),
            "problem": "",
            **_provider_context(request),
        },
    )


async def signin(request: Request) -> Response:
    form = await read_form(request)
    await check_csrf(request, form)
    target = local_path(form.get("next", "/"))
    token = form.get("token", "").strip()
    problem = ""
    if not token or len(token) > MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        problem = "Paste an API token (mrt_...) or a JWT: one line, no spaces."
    else:
        base: AsyncClient = request.app.state.registry
        try:
            identity = await base.acting_as(token, source="the sign-in form").whoami()
        except (Unauthenticated, PermissionDenied) as exc:
            problem = f"The registry did not accept this token: {exc.message}"
        else:
            response = RedirectResponse(target, status_code=303)
            sessions = codec(request)
            set_cookie(response, SESSION_COOKIE, sessions.seal(token, identity.principal), sessions.lifetime)
            return response
    return render(
        request,
        "signin.html",
        {
            "title": "Sign in",
            "next": target,
            "expired": False,
            "problem": problem,
            **_provider_context(request),
        },
        status=401,
    )


async def signout(request: Request) -> Response:
    form = await read_form(request)
    await check_csrf(request, form)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response
