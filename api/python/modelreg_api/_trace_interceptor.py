"""The client interceptors of modelreg_api.tracing (imported only when a tracer provider is set)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer


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


# grpc.aio files an interceptor under the first of the four kinds it is an instance of, so each
# kind needs an object of its own.
class _UnaryUnary(_Tracing, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)


class _UnaryStream(_Tracing, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)


class _StreamUnary(_Tracing, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)


class _StreamStream(_Tracing, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)


def tracing_interceptors(tracer: Tracer) -> list[Any]:
    """One interceptor of each kind (unary/stream requests, unary/stream responses)."""
    ending: set[asyncio.Task[None]] = set()
    return [kind(tracer, ending) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
