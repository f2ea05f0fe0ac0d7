"""Sign-in through the deployment's OpenID Connect provider (modelreg_web.oidc): the start, which
sends the browser to the provider, and the callback, which the provider sends it back to."""

from __future__ import annotations

import hmac

from modelreg.aio import AsyncClient
from modelreg.errors import PermissionDenied, Unauthenticated
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelreg_web.oidc import (
    FLOW_COOKIE,
    FLOW_COOKIE_PATH,
    FLOW_SECONDS,
    Flow,
    OidcError,
    OidcProvider,
    quoted,
    unverified_claims,
)
from modelreg_web.pages.auth import local_path
from modelreg_web.sessions import SESSION_COOKIE, set_cookie
from modelreg_web.views import PageError, codec, render

MAX_CODE_CHARS = 2048


def provider(request: Request) -> OidcProvider:
    found: OidcProvider | None = request.app.state.oidc
    if found is None:
        raise PageError(404, "Not found", "This registry does not offer sign-in through a provider.")
    return found


def redirect_url(request: Request, oidc: OidcProvider) -> str:
    """Where the provider sends the browser back: the configured URL, else this site's own
    callback as the request reached it (the same on the way out and back)."""
    if oidc.settings.redirect_url:
        return oidc.settings.redirect_url
    return f"{request.url.scheme}://{request.url.netloc}{FLOW_COOKIE_PATH}/callback"


def _forget_flow(response: Response) -> Response:
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH, secure=True, httponly=True, samesite="lax")
    return response


def _refused(request: Request, status: int, title: str, detail: str) -> Response:
    page = render(request, "error.html", {"title": title, "detail": detail, "status": status}, status=status)
    return _forget_flow(page)


async def start(request: Request) -> Response:
    oidc = provider(request)
    flow = Flow.start(local_path(request.query_params.get("next", "/")))
    try:
        target = await oidc.authorization_url(flow, redirect_url(request, oidc))
    except OidcError as exc:
        return _refused(request, exc.status, exc.title, exc.detail)
    response = RedirectResponse(target, status_code=303)
    sealed = codec(request).seal_flow(flow.as_dict(), FLOW_SECONDS)
    set_cookie(response, FLOW_COOKIE, sealed, FLOW_SECONDS, path=FLOW_COOKIE_PATH, samesite="lax")
    return response


async def callback(request: Request) -> Response:  # noqa: PLR0911 - one page per way it can end
    oidc = provider(request)
    params = request.query_params
    error = params.get("error")
    if error:
        if error == "access_denied":
            return _refused(
                request,
                403,
                "Sign-in was cancelled",
                f"{oidc.display_name} did not sign you in (access was denied or consent refused). "
                "Nothing was changed; sign in again when you want to.",
            )
        return _refused(
            request,
            502,
            "The sign-in provider refused the sign-in",
            f"{oidc.display_name} answered {quoted(error)}. Sign in again.",
        )
    body = codec(request).open_flow(request.cookies.get(FLOW_COOKIE))
    if not body:
        return _refused(
            request,
            400,
            "No sign-in in progress",
            "This sign-in link was already used, has expired, or was started in another browser. "
            "Sign in again.",
        )
    flow = Flow.from_dict(body)
    if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
        return _refused(
            request,
            400,
            "This sign-in does not match",
            "The answer from the sign-in provider belongs to another sign-in (state mismatch). "
            "Sign in again.",
        )
    code = params.get("code", "")
    if not code or len(code) > MAX_CODE_CHARS:
        return _refused(request, 400, "The sign-in provider sent no code", "Sign in again.")
    callback_url = redirect_url(request, oidc)
    try:
        id_token = await oidc.exchange(code, flow, callback_url)
        claims = unverified_claims(id_token)
    except OidcError as exc:
        return _refused(request, exc.status, exc.title, exc.detail)
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), flow.nonce.encode()):
        return _refused(
            request,
            400,
            "This sign-in does not match",
            "The provider's token was not issued for this sign-in (nonce mismatch). Sign in again.",
        )
    base: AsyncClient = request.app.state.registry
    try:
        identity = await base.acting_as(id_token, source=f"the sign-in through {oidc.display_name}").whoami()
    except (Unauthenticated, PermissionDenied) as exc:
        return _refused(
            request,
            401,
            "The registry did not accept this sign-in",
            f"{oidc.display_name} signed you in, but the registry does not accept its token: {exc.message}",
        )
    expires = claims.get("exp")
    not_after = int(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None
    sessions = codec(request)
    # A page, not a redirect: the browser arrived here from the provider's site, and RFC 6265bis
    # counts a whole redirect chain that began on another site as cross-site, so a browser that
    # follows it may withhold the Strict session cookie on the next page (Chromium, by default,
    # does not); this page's own navigation starts on this site and always carries it.
    response = render(
        request,
        "signed_in.html",
        {"title": "Signed in", "next": flow.next, "signed_in_as": identity.principal},
        session=None,
    )
    set_cookie(
        response, SESSION_COOKIE, sessions.seal(id_token, identity.principal, not_after), sessions.lifetime
    )
    return _forget_flow(response)
