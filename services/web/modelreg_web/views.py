"""Rendering pages, and what every page does alike: who is signed in, CSRF, and failures.

A handler asks `Visit.of(request)` for the signed-in user (a redirect to /signin when there is
none) and gets a client that acts as that user. Registry failures become pages, never stack
traces: a missing thing is 404, an unreachable service 503 with a banner, a refusal 403 with the
reason; anything unexpected is logged with its traceback and shown as a plain 500 page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from modelreg.aio import AsyncClient
from modelreg.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ModelregError,
    NotFound,
    PermissionDenied,
    RegistryError,
    Unauthenticated,
    Unavailable,
)
from modelreg_api.names import InvalidResourceName
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from modelreg_web import present
from modelreg_web.markdown import render_markdown
from modelreg_web.sessions import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    Session,
    SessionCodec,
    csrf_cookie_value,
    same_origin,
    set_cookie,
)

log = logging.getLogger("modelreg_web")

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("modelreg_web", "templates"),
    autoescape=True,  # every template is HTML; user text is escaped unless sanitised first
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    when=present.when,
    iso=present.iso,
    size=present.size,
    number=present.number,
    version_state=present.version_state,
    review_state=present.review_state,
    decision=present.decision,
    direction=present.direction,
    ui_path=present.ui_path,
    short_name=present.short_name,
    short_digest=present.short_digest,
    safe_url=present.safe_url,
    plain=present.plain,
    markdown=render_markdown,
    urlquote=lambda text: quote(str(text), safe=""),
)
_environment.globals.update(file_url=present.file_url, column_value=present.column_value)


class PageError(Exception):
    """Ends a handler with an error page (`status`, a title and one line for the reader)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


class SignInRequired(Exception):
    """No session; `ended` when the browser still sent one that is no longer valid (expired with
    its token, or sealed under another key), so the sign-in page says why."""

    def __init__(self, *, ended: bool = False) -> None:
        super().__init__("sign-in required")
        self.ended = ended


@dataclass(frozen=True, slots=True)
class Visit:
    """One request of a signed-in user: who, a client acting as them, the CSRF value."""

    request: Request
    session: Session
    client: AsyncClient

    @classmethod
    def of(cls, request: Request) -> Visit:
        cookie = request.cookies.get(SESSION_COOKIE)
        session = codec(request).open(cookie)
        if session is None:
            raise SignInRequired(ended=bool(cookie))
        base: AsyncClient = request.app.state.registry
        return cls(request, session, base.acting_as(session.token, source="the web session"))


def codec(request: Request) -> SessionCodec:
    found: SessionCodec = request.app.state.sessions
    return found


async def check_csrf(request: Request, form: Mapping[str, str]) -> None:
    """Refuses (403) a POST without a matching CSRF token or from another origin."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not same_origin(request) or not codec(request).csrf_valid(cookie, form.get(CSRF_FIELD)):
        raise PageError(
            403,
            "This form has expired",
            "The request did not carry this site's form token (CSRF protection). "
            "Reload the page and try again.",
        )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    csrf_value, new = csrf_cookie_value(request)
    if session is None:
        session = codec(request).open(request.cookies.get(SESSION_COOKIE))
    values = {
        "request_path": request.url.path,
        "principal": session.principal if session else "",
        "csrf_token": codec(request).csrf_field(csrf_value),
        "csrf_field": CSRF_FIELD,
        "outage": "",
        **context,
    }
    html = _environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    if new:
        set_cookie(response, CSRF_COOKIE, csrf_value, max_age=None)
    return response


def error_page(
    request: Request, status: int, title: str, detail: str, *, outage: bool = False
) -> HTMLResponse:
    context = {"title": title, "detail": detail, "status": status}
    if outage:
        context["outage"] = detail
    return render(request, "error.html", context, status=status)


def _next_path(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def failure_response(request: Request, exc: BaseException) -> Response:  # noqa: PLR0911 - a page per kind
    """The page for an exception that ended a handler."""
    if isinstance(exc, SignInRequired):
        if request.method != "GET":
            return error_page(request, 401, "Please sign in", "Your session has ended; sign in again.")
        ended = "expired=1&" if exc.ended else ""
        redirect = RedirectResponse(
            f"/signin?{ended}next={quote(_next_path(request), safe='')}", status_code=303
        )
        if exc.ended:
            redirect.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return redirect
    if isinstance(exc, PageError):
        return error_page(request, exc.status, exc.title, exc.detail)
    if isinstance(exc, Unauthenticated):
        response: Response = RedirectResponse(
            f"/signin?expired=1&next={quote(_next_path(request), safe='')}", status_code=303
        )
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response
    if isinstance(exc, (NotFound, InvalidResourceName)):
        return error_page(request, 404, "Not found", "There is no such page, or you may not see it.")
    if isinstance(exc, (Unavailable, DeadlineExceeded)):
        log.warning("registry unavailable for %s: %s", request.url.path, exc)
        return error_page(
            request,
            503,
            "The registry is not answering",
            "The registry's services cannot be reached right now (they may be restarting). "
            "Nothing was changed; try again in a moment.",
            outage=True,
        )
    if isinstance(exc, PermissionDenied):
        return error_page(request, 403, "Not allowed", present.explain(exc, "show this").explanation)
    if isinstance(exc, InvalidArgument):
        return error_page(request, 400, "The registry did not accept this request", exc.message)
    if isinstance(exc, RegistryError):
        log.warning("registry error for %s: %s", request.url.path, exc)
        return error_page(request, 502, "The registry answered with an error", f"{exc.reason}: {exc.message}")
    if isinstance(exc, ModelregError):
        return error_page(request, 502, "The registry answered with an error", str(exc))
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return error_page(
        request, 500, "Something went wrong", "The web service hit an unexpected error; it was logged."
    )
