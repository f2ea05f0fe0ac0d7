"""Running one gRPC service process: health, reflection, interceptors and graceful shutdown.

While serving, health follows the stores (store_health.py): NOT_SERVING while one is unreachable.
Shutdown order on SIGTERM (what Kubernetes sends): health -> NOT_SERVING so load balancers
stop routing (for good: the store monitor stops and can no longer turn it back), `server.stop(grace)`
drains in-flight calls, then the service's clients close.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from modelreg_common.interceptors import CallContextInterceptor, Security
from modelreg_common.observability.exposition import MetricsServer
from modelreg_common.store_health import StoreHealth
from modelreg_common.tls import ServerTls, is_loopback, server_credentials

log = structlog.get_logger("modelreg.server")

# Upload chunks are at most 2 MiB; leave room for the envelope.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer to serve, named by its fully qualified proto service name."""

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]


class BindError(Exception):
    pass


async def serve(
    listen_addr: str,
    services: Sequence[ServiceBinding],
    *,
    grace_seconds: float,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    on_draining: Sequence[Callable[[], Awaitable[None]]] = (),
    stop: asyncio.Event | None = None,
    security: Security | None = None,
    tls: ServerTls | None = None,
    store_health: StoreHealth | None = None,
    metrics_addr: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully.

    `on_draining` runs when the drain starts: long-lived streams end there instead of holding the
    drain for the whole grace period. Without `security` every call but health and reflection is
    refused (UNAUTHENTICATED): a server is never open by omission. Without `tls` the port is
    plaintext: the settings allow that on a non-loopback address only with
    MODELREG_ALLOW_PLAINTEXT (`tls.read_server_tls`). With `store_health`, health follows the
    stores it probes, and calls that meet a store outage report it there. With `metrics_addr`,
    `/metrics` is served there (observability/exposition.py) from before the first call.
    """
    store_health = store_health or StoreHealth(())
    server = grpc.aio.server(
        interceptors=[CallContextInterceptor(security, on_store_outage=store_health.outage_seen)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.add_to_server(server)
    names = [service.full_name for service in services]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        if tls is None:
            server.add_insecure_port(listen_addr)
        else:
            server.add_secure_port(listen_addr, server_credentials(tls))
    except (RuntimeError, OSError) as exc:  # OSError: a TLS file vanished since the settings were read
        raise BindError(f"cannot listen on {listen_addr}: {exc}") from exc
    metrics = MetricsServer(metrics_addr) if metrics_addr is not None else None
    try:
        metrics_at = metrics.start() if metrics is not None else None
    except OSError as exc:
        raise BindError(f"cannot serve metrics on {metrics_addr}: {exc}") from exc
    if tls is None and not is_loopback(listen_addr):
        log.warning(
            "plaintext on a non-loopback address: credentials and models cross the network unencrypted "
            "unless a service mesh or proxy protects it",
            address=listen_addr,
        )

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    store_health.start(health_servicer, ["", *names])
    transport = "plaintext" if tls is None else "mtls" if tls.require_client_cert else "tls"
    log.info("serving", address=listen_addr, services=names, transport=transport, metrics=metrics_at)

    await stop.wait()
    log.info("shutting down", grace_seconds=grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    await store_health.stop()
    for drain in on_draining:
        await drain()
    await server.stop(grace_seconds)
    for close in on_shutdown:
        try:
            await close()
        except Exception:
            log.exception("error while closing a client during shutdown")
    if metrics is not None:
        metrics.stop()
    log.info("stopped")
