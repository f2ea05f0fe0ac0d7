"""A client interceptor for every kind of call, from one function.

grpc.aio files an interceptor object under the first of the four call kinds (unary or stream
request, unary or stream response) it is an instance of, so an interceptor meant for every call
needs one object per kind. `for_every_kind` builds the four from the one function that does the
work, so the tracing and metrics interceptors do not each repeat the adapters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

# (continuation, client call details, request or request iterator) -> the call
Intercept = Callable[[Callable[..., Any], Any, Any], Awaitable[Any]]


class _Kind:
    def __init__(self, intercept: Intercept):
        self._intercept = intercept


class _UnaryUnary(_Kind, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _UnaryStream(_Kind, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _StreamUnary(_Kind, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


class _StreamStream(_Kind, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


def for_every_kind(intercept: Intercept) -> list[grpc.aio.ClientInterceptor]:
    """Four interceptors, one per call kind, each handing the call to `intercept`."""
    kinds = (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)
    # grpc-stubs leave the aio interceptor type open (a cast is what they ask for).
    return cast("list[grpc.aio.ClientInterceptor]", [kind(intercept) for kind in kinds])
