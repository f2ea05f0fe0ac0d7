"""`/metrics` on a port of its own: MODELREG_METRICS_ADDR (`host:port`, or `off`).

Why a port of its own: the gRPC port is what clients reach and every call on it is
authenticated; the metrics port is for the cluster's Prometheus only (a NetworkPolicy can open
it to the monitoring namespace alone) and answers without credentials, as Prometheus targets do.
It serves `/metrics` and nothing else (404), in Prometheus' text format or in OpenMetrics when
the scraper asks for it. The defaults are on loopback (metadata 127.0.0.1:9464, artifacts
127.0.0.1:9465, web UI 127.0.0.1:9466): nothing is exposed beyond the host unless the
deployment says so, as the manifests do with 0.0.0.0:<port>. The server runs on threads of its
own, so a scrape never waits for the event loop, and a busy event loop never delays a scrape.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from modelreg_common.config import EnvReader

METRICS_ADDR_ENV = "MODELREG_METRICS_ADDR"
METADATA_METRICS_ADDR = "127.0.0.1:9464"
ARTIFACT_METRICS_ADDR = "127.0.0.1:9465"
WEB_METRICS_ADDR = "127.0.0.1:9466"
_OFF = ("off", "none", "false", "0")
METRICS_PATH = "/metrics"


def read_metrics_addr(read: EnvReader, default: str) -> str | None:
    """Where the service serves `/metrics`; None when MODELREG_METRICS_ADDR is `off`."""
    if read.text(METRICS_ADDR_ENV, default).lower() in _OFF:
        return None
    return read.address(METRICS_ADDR_ENV, default)


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if urlsplit(self.path).path != METRICS_PATH:
            self.send_error(404, "only /metrics is served here")
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape every few seconds is not worth a log line


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """The `/metrics` endpoint; `start` binds (OSError when it cannot) and returns the address."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        kind = _Server6 if ":" in self._host else _Server
        self._server = kind((self._host, self._port), _MetricsHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        shown = host.decode() if isinstance(host, bytes) else host
        return f"[{shown}]:{port}" if kind is _Server6 else f"{shown}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
