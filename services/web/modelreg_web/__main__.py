"""`python -m modelreg_web`: serve the web UI on MODELREG_WEB_ADDR (default 127.0.0.1:8080),
and its Prometheus metrics on MODELREG_METRICS_ADDR (default 127.0.0.1:9466, `off`: none).

SIGTERM (Kubernetes, the local stack) drains: new connections are refused, event streams end
(the browsers reconnect to another replica and resume from their last event), open requests get
`shutdown_grace` seconds, then the registry client is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import FrameType

import uvicorn
from modelreg_api.channels import intercept_channels
from modelreg_common.config import ConfigError
from modelreg_common.observability.client_metrics import client_metrics_interceptors
from modelreg_common.observability.exposition import MetricsServer
from modelreg_common.observability.tracing import configure_tracing

from modelreg_web.app import create_app
from modelreg_web.config import WebConfigError, WebSettings, key_fingerprint
from modelreg_web.oidc import CallbackRedaction

log = logging.getLogger("modelreg_web")


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells long-lived streams to end when asked to exit."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stopping.set()
        super().handle_exit(sig, frame)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("MODELREG_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = WebSettings.from_environment()
    except (WebConfigError, ValueError) as exc:
        sys.exit(f"modelreg-web: {exc}")
    try:
        # Before the app's client opens its channels: they add CLIENT spans when tracing is on.
        tracing = configure_tracing(os.environ, "modelreg-web")
    except ConfigError as exc:
        print(f"modelreg-web: {exc}", file=sys.stderr)  # noqa: T201 - as the services say it
        sys.exit(2)
    if tracing.enabled:
        log.info("traces exported (%s)", ", ".join(tracing.exporters))
    else:
        log.info("tracing off")
    # Before the app's client opens its channels: they count the calls to the services.
    intercept_channels(client_metrics_interceptors())
    metrics = MetricsServer(settings.metrics_addr) if settings.metrics_addr is not None else None
    try:
        metrics_at = metrics.start() if metrics is not None else "off"
    except OSError as exc:  # as the gRPC services: a port the deployment names must be ours
        sys.exit(f"modelreg-web: cannot serve metrics on {settings.metrics_addr}: {exc}")
    stopping = asyncio.Event()
    app = create_app(settings, stopping)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=os.environ.get("MODELREG_LOG_LEVEL", "INFO").lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        proxy_headers=False,
        server_header=False,
    )
    # uvicorn set its loggers up in Config(): the filter goes on after. httpx logs every request
    # at INFO; the provider's URLs carry no secret, but its chatter is not this service's log.
    logging.getLogger("uvicorn.access").addFilter(CallbackRedaction())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log.info(
        "modelreg web UI on http://%s:%d (metrics %s, metadata %s, artifacts %s, session key %s)",
        settings.host,
        settings.port,
        metrics_at,
        settings.client.addresses.metadata,
        settings.client.addresses.artifacts,
        key_fingerprint(settings.session_key),
    )
    # uvicorn handles SIGTERM while it serves, then re-raises it to the handler in place before:
    # after a completed drain that is this no-op, so a graceful stop exits 0 (as the services do).
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        _Server(config, stopping).run()
    finally:
        if metrics is not None:
            metrics.stop()
        tracing.shutdown()  # exports the spans still batched


if __name__ == "__main__":
    main()
