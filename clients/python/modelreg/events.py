"""The audit trail: listing events, and following them across reconnections.

`WatchEvents` delivers every event after a sequence number, in order and without gaps, at least
once. A follower that reconnects with the last sequence number it saw misses nothing; this
module does that, and drops the repeats an at-least-once stream may deliver, so callers see each
event exactly once and in order however often the connection breaks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import grpc
from google.protobuf import timestamp_pb2
from modelreg_api import headers
from modelregistry.v1 import event_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from modelreg.connection import Connection
from modelreg.errors import RegistryError, Unavailable, from_rpc_error

NEWEST_FIRST = "sequence desc"  # ListEvents' order_by for the latest events first

# Called before each reconnection: the error that ended the stream, the sequence number the
# next stream continues after, and the delay before it is opened.
ReconnectCallback = Callable[[RegistryError, int, float], None]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list or follow; empty fields do not filter. Resource names, not short refs."""

    namespace: str = ""
    model: str = ""
    resource: str = ""
    actions: Sequence[str] = field(default_factory=tuple)

    def list_request(
        self,
        *,
        actor: str,
        start_time: datetime | None,
        end_time: datetime | None,
        after_sequence: int,
        page_size: int,
        page_token: str,
        newest_first: bool = False,
    ) -> md.ListEventsRequest:
        return md.ListEventsRequest(
            namespace=self.namespace,
            model=self.model,
            resource=self.resource,
            actions=list(self.actions),
            actor=actor,
            start_time=timestamp(start_time),
            end_time=timestamp(end_time),
            after_sequence=after_sequence,
            page_size=page_size,
            page_token=page_token,
            order_by=NEWEST_FIRST if newest_first else "",
        )

    def watch_request(self, *, after_sequence: int, from_now: bool) -> md.WatchEventsRequest:
        return md.WatchEventsRequest(
            after_sequence=after_sequence,
            from_now=from_now,
            namespace=self.namespace,
            model=self.model,
            resource=self.resource,
            actions=list(self.actions),
        )


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _start_of(metadata: Iterable[tuple[str, str | bytes]] | None) -> int | None:
    """The sequence the service says the stream starts after (absent from older services)."""
    for key, value in metadata or ():
        if key == headers.WATCH_AFTER_SEQUENCE and isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _resume_hint(error: RegistryError) -> int:
    """The sequence a server that shut down had reached (SHUTTING_DOWN carries it), else 0.

    A filtered stream skips events silently, so this can be ahead of the last event delivered;
    resuming there saves re-reading the skipped ones.
    """
    value = error.metadata.get("last_sequence", "")
    return int(value) if value.isdigit() else 0


async def follow(
    connection: Connection,
    scope: EventFilter,
    *,
    after_sequence: int,
    from_now: bool,
    reconnect: bool,
    on_reconnect: ReconnectCallback | None,
) -> AsyncIterator[event_pb2.Event]:
    """Every event after `after_sequence` (or from now on), each once, in order, until closed.

    Connection failures before the stream was ever established are retried as the client's
    `RetryPolicy` says and then raised (a wrong address should fail, not hang). Once it has
    been connected, the stream is re-opened after every break with backoff, for as long as the
    caller keeps iterating: deployment controllers must outlive restarts of the service.
    """
    policy = connection.settings.retry
    metadata = connection.call_metadata()
    last = after_sequence
    # `from_now` applies until the position is known: after the first event, or a server's hint.
    start_now = from_now
    connected_once = False
    failures = 0
    while True:
        request = scope.watch_request(after_sequence=last, from_now=start_now)
        call = connection.metadata.WatchEvents(request, metadata=metadata)
        try:
            await call.wait_for_connection()
            connected_once = True
            failures = 0
            if start_now and (start := _start_of(await call.initial_metadata())) is not None:
                last, start_now = start, False  # "now" is a sequence number from here on
            async for event in call:
                if event.sequence <= last:
                    continue  # at least once: a repeat of an event already delivered
                last, start_now = event.sequence, False
                yield event
            ended: RegistryError = Unavailable("the event stream ended", reason="STREAM_ENDED")
        except grpc.RpcError as exc:
            ended = from_rpc_error(exc)
        finally:
            call.cancel()
        if not reconnect or not isinstance(ended, Unavailable):
            raise ended
        hint = _resume_hint(ended)
        if hint > last:
            last, start_now = hint, False
        failures += 1
        if not connected_once and failures >= policy.attempts:
            raise ended
        delay = random.uniform(0, policy.backoff(failures))  # noqa: S311 - jitter, not security
        if on_reconnect is not None:
            on_reconnect(ended, last, delay)
        await asyncio.sleep(delay)


async def list_events(
    connection: Connection,
    scope: EventFilter,
    *,
    actor: str,
    start_time: datetime | None,
    end_time: datetime | None,
    after_sequence: int,
    page_size: int,
    newest_first: bool = False,
) -> AsyncIterator[event_pb2.Event]:
    """The matching events in sequence order (or newest first), a page at a time."""
    pages = connection.pages(
        connection.metadata.ListEvents,
        lambda token: scope.list_request(
            actor=actor,
            start_time=start_time,
            end_time=end_time,
            after_sequence=after_sequence,
            page_size=page_size,
            page_token=token,
            newest_first=newest_first,
        ),
    )
    async for page in pages:
        for event in page.events:
            yield event


def action_names(actions: str | Iterable[str]) -> tuple[str, ...]:
    """`ALIAS_MOVED` or several; case-insensitive, so `alias_moved` works on a command line."""
    if isinstance(actions, str):
        actions = [actions]
    return tuple(a.strip().upper() for a in actions if a.strip())
