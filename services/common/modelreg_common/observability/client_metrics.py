"""Metrics of the gRPC calls a process makes (the web UI's calls to the two services).

Given to every channel through `modelreg_api.channels.intercept_channels`, beside the tracing
interceptor, so the SDK's channels stay the one way a process reaches the services. A call counts
once, when it ends, with its final status: for a stream, the end of the stream (CANCELLED when the
caller abandoned it). `method` comes from the stub, never from what a user sends: the series are
bounded by the API's methods.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from modelreg_api.interceptor_kinds import for_every_kind
from prometheus_client import Counter, Histogram

from modelreg_common.observability.buckets import DURATION_BUCKETS

CLIENT_REQUESTS = Counter(
    "modelreg_grpc_client_requests",
    "gRPC calls this process made to the registry's services, by final status code",
    ["service", "method", "code"],
)
CLIENT_DURATION = Histogram(
    "modelreg_grpc_client_duration_seconds",
    "Time from a call's start to its final status, as the caller saw it (a stream's whole life)",
    ["service", "method", "code"],
    buckets=DURATION_BUCKETS,
)


class _Measuring:
    """Counts a call and observes its duration when it is done."""

    def __init__(self, ending: set[asyncio.Task[None]]):
        self._ending = ending  # the tasks that read final codes, held until they ran

    async def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
        service, _, name = method.lstrip("/").partition("/")
        started = time.perf_counter()
        try:
            call = await continuation(details, request)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            _finished(service, name, code, started)
            raise
        call.add_done_callback(lambda done: self._finish_soon(service, name, started, done))
        return call

    def _finish_soon(self, service: str, name: str, started: float, call: grpc.aio.Call) -> None:
        # The call is done, but its code is read with an await: record it in a task.
        elapsed = time.perf_counter() - started
        task = asyncio.ensure_future(_record(service, name, elapsed, call))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)


def _finished(service: str, name: str, code: grpc.StatusCode, started: float) -> None:
    elapsed = time.perf_counter() - started
    CLIENT_REQUESTS.labels(service, name, code.name).inc()
    CLIENT_DURATION.labels(service, name, code.name).observe(elapsed)


async def _record(service: str, name: str, elapsed: float, call: grpc.aio.Call) -> None:
    code = await call.code()  # done: answers at once
    CLIENT_REQUESTS.labels(service, name, code.name).inc()
    CLIENT_DURATION.labels(service, name, code.name).observe(elapsed)


def client_metrics_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """One interceptor of each kind (unary/stream requests, unary/stream responses)."""
    return for_every_kind(_Measuring(set())._call)
