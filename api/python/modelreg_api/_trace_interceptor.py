"""The client interceptors of modelreg_api.tracing (imported only when a tracer provider is set)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from modelreg_api.interceptor_kinds import for_every_kind


class _Tracing:
    """A CLIENT span per call, its context in the call's metadata; the span ends with the call."""

    def __init__(self, tracer: Tracer, ending: set[asyncio.Task[None]]):
        self._tracer = tracer
        self._ending = ending  # the tasks that end spans, held until they ran

    def _start(self, details: grpc.aio.ClientCallDetails) -> tuple[Span, grpc.aio.ClientCallDetails]:
        method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
        service, _, name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *carrier.items())
        traced = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return span, traced

    async def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        span, traced = self._start(details)
        try:
            call = await continuation(traced, request)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()
            raise
        call.add_done_callback(lambda done: self._end_soon(span, done))
        return call

    def _end_soon(self, span: Span, call: grpc.aio.Call) -> None:
        # The call is done, but its code is read with an await: end the span in a task.
        task = asyncio.ensure_future(self._end(span, call))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    @staticmethod
    async def _end(span: Span, call: grpc.aio.Call) -> None:
        code = await call.code()
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()


def tracing_interceptors(tracer: Tracer) -> list[grpc.aio.ClientInterceptor]:
    """One interceptor of each kind (unary/stream requests, unary/stream responses)."""
    return for_every_kind(_Tracing(tracer, set())._call)
