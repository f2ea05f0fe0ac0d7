"""The cross-cutting part of every RPC: request id, actor, structured logs, error mapping.

Servicers raise domain errors (`modelreg_common.errors`) or `InvalidResourceName`; this
interceptor turns them into AIP-193 statuses. Anything else is a bug: it is logged with its
traceback and answered with INTERNAL naming the request id. An authentication interceptor can
later run before this one and bind the verified identity instead of the metadata actor.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from modelreg import headers
from modelreg.names import InvalidResourceName

from modelreg_common import context, errors
from modelreg_common.status import STATUS_DETAILS_KEY, rich_status

log = structlog.get_logger("modelreg.rpc")

_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
_MAX_REQUEST_ID = 128


def _request_id(metadata: dict[str, str]) -> str:
    given = metadata.get(headers.REQUEST_ID, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return uuid.uuid4().hex


class _Call:
    """State of one RPC for logging and error translation."""

    def __init__(self, method: str, metadata: dict[str, str]):
        self.method = method
        self.request_id = _request_id(metadata)
        self.actor = metadata.get(headers.ACTOR, "")
        self.quiet = method.startswith(_QUIET_PREFIXES)
        self.started = time.perf_counter()

    def bind(self, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        context.bind_call(self.request_id, self.actor)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=self.request_id, method=self.method)
        ctx.set_trailing_metadata(((headers.REQUEST_ID, self.request_id),))

    def done(self, code: grpc.StatusCode) -> None:
        if not self.quiet or code is not grpc.StatusCode.OK:
            elapsed_ms = round((time.perf_counter() - self.started) * 1000, 2)
            log.info("rpc", code=code.name, duration_ms=elapsed_ms, actor=context.current_actor())

    async def fail(self, ctx: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
        """Abort the RPC with the status that `exc` stands for (never returns)."""
        if isinstance(exc, InvalidResourceName):
            exc = errors.InvalidArgument(exc.field, exc.message)
        if isinstance(exc, errors.RegistryError):
            code, message, details = rich_status(exc)
        else:
            log.exception("unhandled error", exc_info=exc)
            code = grpc.StatusCode.INTERNAL
            message, details = f"internal error (request id {self.request_id})", b""
        self.done(code)
        trailers: list[tuple[str, str | bytes]] = [(headers.REQUEST_ID, self.request_id)]
        if details:
            trailers.append((STATUS_DETAILS_KEY, details))
        await ctx.abort(code, message, trailing_metadata=tuple(trailers))


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this; it must pass through untouched.
    return isinstance(exc, grpc.aio.AbortError)


# grpc-stubs describe the synchronous handler types; aio handlers hold coroutine functions and
# async generators instead, so handlers are typed as Any at this boundary.
Handler = Any


class CallContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        metadata = {
            key: value
            for key, value in (handler_call_details.invocation_metadata or ())
            if isinstance(value, str)
        }
        return _wrap(handler, lambda: _Call(method, metadata))


def _or_encoded(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """A response serializer that lets a streaming handler yield messages it already encoded.

    Bulk streams (DownloadFile) build their data messages as wire-format bytes: one copy of the
    payload instead of three through a protobuf object (measured: 1.5 -> 0.7 CPU-s per GiB).
    """

    def serializer(message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return serialize(message) if serialize is not None else message

    return serializer


def _wrap(handler: Handler, new_call: Callable[[], _Call]) -> Handler:
    # The first argument is a request or a request iterator; the wrappers pass it through as is.
    def single_response(inner: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
        async def behaviour(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = new_call()
            call.bind(ctx)
            try:
                response = await inner(request, ctx)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await call.fail(ctx, exc)
            call.done(grpc.StatusCode.OK)
            return response

        return behaviour

    def streamed_response(
        inner: Callable[[Any, Any], AsyncIterator[Any]],
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def behaviour(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            call = new_call()
            call.bind(ctx)
            try:
                result: Any = inner(request, ctx)
                if inspect.isasyncgen(result):
                    async for response in result:
                        yield response
                else:  # a coroutine that sends its responses with ctx.write() (e.g. health Watch)
                    await result
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await call.fail(ctx, exc)
            call.done(grpc.StatusCode.OK)

        return behaviour

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(single_response(handler.unary_unary), **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(single_response(handler.stream_unary), **serializers)
    if handler.unary_stream is not None:
        serializers["response_serializer"] = _or_encoded(handler.response_serializer)
        return grpc.unary_stream_rpc_method_handler(streamed_response(handler.unary_stream), **serializers)
    return grpc.stream_stream_rpc_method_handler(streamed_response(handler.stream_stream), **serializers)
