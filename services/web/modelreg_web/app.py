"""The web application: routes, the shared registry client, security headers, shutdown.

One `AsyncClient` (one pair of gRPC channels) serves every request; each request borrows it
with the signed-in user's token (`AsyncClient.acting_as`), so calls act as that user and the
process holds nothing a second replica would need to know.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from modelreg.aio import AsyncClient
from modelreg.errors import ModelregError, Unavailable
from modelreg_common.observability.tracing import tracer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelreg_web.config import WebSettings
from modelreg_web.metrics import RequestMetrics, route_templates
from modelreg_web.oidc import OidcProvider
from modelreg_web.pages import (
    audit,
    auth,
    browse,
    charts,
    compare,
    events,
    files,
    governance,
    home,
    oidc_signin,
    version,
)
from modelreg_web.sessions import SessionCodec
from modelreg_web.spans import RequestSpans
from modelreg_web.views import error_page, failure_response

STATIC_DIR = Path(__file__).parent / "static"
READY_TIMEOUT = 2.0

# Scripts and styles only from this site (no inline script, no CDN); nothing may frame the UI.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]

Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """Every failure of a handler becomes a page (views.failure_response), never a traceback."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return failure_response(request, exc)

    return wrapped


class ResponseHeaders:
    """Adds the security headers to every response, and `Server-Timing: app;dur=<ms>`: the time
    from the request's arrival to its first response byte (what the UI benchmark reads)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message["headers"] = [
                    *message.get("headers", []),
                    *_SECURITY_HEADERS,
                    (b"server-timing", elapsed),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    """Ready when the metadata service answers: an anonymous identity question it refuses
    (UNAUTHENTICATED) proves it is there as well as an answer would."""
    registry: AsyncClient = request.app.state.registry
    try:
        await asyncio.wait_for(registry.whoami(), READY_TIMEOUT)
    except (Unavailable, TimeoutError) as exc:
        return PlainTextResponse(f"metadata service unreachable: {type(exc).__name__}\n", status_code=503)
    except ModelregError:
        pass
    return PlainTextResponse("ready\n")


def create_app(settings: WebSettings, stopping: asyncio.Event | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.registry = AsyncClient(settings=settings.client)
        app.state.oidc = OidcProvider(settings.oidc) if settings.oidc is not None else None
        try:
            yield
        finally:
            app.state.stopping.set()
            await app.state.registry.close()
            if app.state.oidc is not None:
                await app.state.oidc.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/", page(home.home)),
        Route("/events/stream", events.event_stream),
        Route("/signin", page(auth.signin_form), methods=["GET"]),
        Route("/signin", page(auth.signin), methods=["POST"]),
        Route("/signin/oidc", page(oidc_signin.start)),
        Route("/signin/oidc/callback", page(oidc_signin.callback)),
        Route("/signout", page(auth.signout), methods=["POST"]),
        Route("/audit", page(audit.audit)),
        Route("/n/{ns}", page(browse.namespace)),
        Route("/n/{ns}/m/{model}", page(browse.model)),
        Route("/n/{ns}/m/{model}/compare", page(compare.compare)),
        Route("/n/{ns}/m/{model}/compare/history", page(charts.compare_history)),
        Route("/n/{ns}/m/{model}/aliases/{alias}", page(governance.move_alias), methods=["POST"]),
        Route("/n/{ns}/m/{model}/aliases/{alias}/history", page(browse.alias_history)),
        Route("/n/{ns}/m/{model}/aliases/{alias}/protect", page(governance.protect_alias), methods=["POST"]),
        Route("/n/{ns}/m/{model}/v/{n}", page(version.version)),
        Route("/n/{ns}/m/{model}/v/{n}/history", page(charts.version_history)),
        Route("/n/{ns}/m/{model}/v/{n}/submit", page(governance.submit), methods=["POST"]),
        Route("/n/{ns}/m/{model}/v/{n}/approve", page(governance.approve), methods=["POST"]),
        Route("/n/{ns}/m/{model}/v/{n}/reject", page(governance.reject), methods=["POST"]),
        Route("/n/{ns}/m/{model}/v/{n}/files/{path:path}", page(files.download)),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "Not found", "There is no such page.")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.sessions = SessionCodec(settings.session_key, settings.session_seconds)
    app.state.stopping = stopping or asyncio.Event()
    app.add_middleware(ResponseHeaders)
    templates = route_templates(routes)
    active = tracer()
    if active is not None:  # OTEL_* turned tracing on (configure_tracing in main)
        app.add_middleware(RequestSpans, tracer=active, templates=templates)
    # Outermost of ours: a request's time includes the others' (the last added wraps the rest).
    app.add_middleware(RequestMetrics, templates=templates)
    return app
