"""`watch_events` across broken streams, against an in-process server that misbehaves on purpose.

The real service resumes exactly from `after_sequence`; this one repeats events and drops the
connection at chosen points, so the client's resumption and de-duplication are what is tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from modelreg import AsyncClient, ClientSettings, RetryPolicy
from modelreg import errors as sdk_errors
from modelreg_api import headers
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stores import free_port
from modelregistry.v1 import event_pb2
from modelregistry.v1 import metadata_service_pb2 as md

FAST = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05)


def event(sequence: int) -> event_pb2.Event:
    return event_pb2.Event(sequence=sequence, id=f"id-{sequence}", action="ALIAS_MOVED")


async def unavailable(context: grpc.aio.ServicerContext[Any, Any], last_sequence: int | None) -> None:
    """End the stream as the real service does: UNAVAILABLE, with its position when it knows it."""
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    if last_sequence is not None:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason="SHUTTING_DOWN", metadata={"last_sequence": str(last_sequence)}
            )
        )
        status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="shutting down", details=[detail])
        trailers = (("grpc-status-details-bin", status.SerializeToString()),)
    await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down", trailing_metadata=trailers)


class Scripted:
    """Each WatchEvents call plays the next act: events to send, then how the stream ends."""

    def __init__(
        self, acts: list[tuple[list[int], str, int | None]], starts: list[int] | None = None
    ) -> None:
        self.acts = acts
        self.starts = starts or []  # the start position each stream announces, as the real service does
        self.requests: list[md.WatchEventsRequest] = []
        self.credentials: list[str] = []

    async def watch_events(
        self, request: md.WatchEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[event_pb2.Event]:
        self.requests.append(request)
        self.credentials.append(dict(context.invocation_metadata() or ()).get("authorization", ""))
        sequences, ending, hint = self.acts[min(len(self.requests), len(self.acts)) - 1]
        if len(self.requests) <= len(self.starts):
            start = self.starts[len(self.requests) - 1]
            await context.send_initial_metadata(((headers.WATCH_AFTER_SEQUENCE, str(start)),))
            await asyncio.sleep(0.1)  # the stream lives a moment (a header and an abort at once coalesce)
        for sequence in sequences:
            yield event(sequence)
        if ending == "unavailable":
            await unavailable(context, hint)
        elif ending == "invalid":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after_sequence: must not be negative")
        elif ending == "hang":
            await asyncio.Event().wait()
        # "end": the stream completes normally


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[grpc.aio.Server] = []

    async def start(servicer: Scripted) -> str:
        server = grpc.aio.server()
        # Only WatchEvents: the one method these tests need (the others answer UNIMPLEMENTED).
        handler = grpc.unary_stream_rpc_method_handler(
            servicer.watch_events,
            request_deserializer=md.WatchEventsRequest.FromString,
            response_serializer=event_pb2.Event.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "modelregistry.v1.MetadataService", {"WatchEvents": handler}
                ),
            )
        )
        address = f"127.0.0.1:{free_port()}"
        server.add_insecure_port(address)
        await server.start()
        servers.append(server)
        return address

    yield start
    for server in servers:
        await server.stop(None)


def client(address: str) -> AsyncClient:
    settings = ClientSettings(
        addresses=ServiceAddresses(address, "127.0.0.1:1"), token="mrt_watcher", retry=FAST
    )
    return AsyncClient(settings=settings)


async def take(stream: AsyncIterator[event_pb2.Event], count: int) -> list[int]:
    seen = []
    async for found in stream:
        seen.append(found.sequence)
        if len(seen) == count:
            break
    return seen


async def test_reconnects_after_the_last_event_seen_and_drops_repeats(serve: Any) -> None:
    servicer = Scripted(
        [
            ([1, 2, 3], "unavailable", None),  # a dropped connection: no position from the server
            ([2, 3, 4, 5], "unavailable", 7),  # repeats 2 and 3; shuts down having skipped 6 and 7
            ([], "end", None),  # ends without an error: reconnect all the same
            ([8, 9], "hang", None),
        ]
    )
    reconnects: list[tuple[str, int]] = []
    async with client(await serve(servicer)) as registry:
        stream = registry.watch_events(
            model="team/m",
            actions=["alias_moved"],
            on_reconnect=lambda e, after, _: reconnects.append((e.reason, after)),
        )
        seen = await asyncio.wait_for(take(stream, 7), timeout=10)
    assert seen == [1, 2, 3, 4, 5, 8, 9]  # each once, in order
    assert [r.after_sequence for r in servicer.requests] == [0, 3, 7, 7]
    assert reconnects == [("", 3), ("SHUTTING_DOWN", 7), ("STREAM_ENDED", 7)]
    # Every stream carries the same filters (as resource names) and the credential.
    assert {(r.model, tuple(r.actions)) for r in servicer.requests} == {
        ("namespaces/team/models/m", ("ALIAS_MOVED",))
    }
    assert set(servicer.credentials) == {"Bearer mrt_watcher"}


async def test_from_now_holds_until_the_position_is_known(serve: Any) -> None:
    servicer = Scripted([([], "unavailable", None), ([41], "unavailable", None), ([42], "hang", None)])
    async with client(await serve(servicer)) as registry:
        seen = await asyncio.wait_for(take(registry.watch_events(from_now=True), 2), timeout=10)
    assert seen == [41, 42]
    assert [(r.from_now, r.after_sequence) for r in servicer.requests] == [(True, 0), (True, 0), (False, 41)]


async def test_from_now_resumes_where_the_service_said_the_stream_started(serve: Any) -> None:
    # The stream breaks before its first event; events 41 and 42 happened meanwhile. Resuming
    # "from now" again would lose them; the announced start position keeps them.
    servicer = Scripted([([], "unavailable", None), ([41, 42], "hang", None)], starts=[40])
    async with client(await serve(servicer)) as registry:
        seen = await asyncio.wait_for(take(registry.watch_events(from_now=True), 2), timeout=10)
    assert seen == [41, 42]
    assert [(r.from_now, r.after_sequence) for r in servicer.requests] == [(True, 0), (False, 40)]


async def test_answers_other_than_unavailable_are_raised_not_retried(serve: Any) -> None:
    servicer = Scripted([([1], "invalid", None)])
    async with client(await serve(servicer)) as registry:
        with pytest.raises(sdk_errors.InvalidArgument):
            await asyncio.wait_for(take(registry.watch_events(), 5), timeout=10)
    assert len(servicer.requests) == 1


async def test_without_reconnect_the_first_break_is_raised(serve: Any) -> None:
    servicer = Scripted([([1, 2], "unavailable", None)])
    async with client(await serve(servicer)) as registry:
        with pytest.raises(sdk_errors.Unavailable):
            await asyncio.wait_for(take(registry.watch_events(reconnect=False), 5), timeout=10)
    assert len(servicer.requests) == 1


async def test_a_service_never_reached_fails_after_the_retry_policy() -> None:
    async with client(f"127.0.0.1:{free_port()}") as registry:
        with pytest.raises(sdk_errors.Unavailable):
            await asyncio.wait_for(take(registry.watch_events(), 1), timeout=30)
