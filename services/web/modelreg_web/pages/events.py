"""The live activity feed: registry events as Server-Sent Events, followed through WatchEvents.

The browser's EventSource reconnects by itself and sends `Last-Event-ID` (our event sequence), so
a dropped connection or a restarted replica resumes exactly after the last event shown. A new
stream without it starts from now. Comments every 15 s keep proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from modelreg.errors import ModelregError
from modelregistry.v1 import event_pb2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from modelreg_web import present
from modelreg_web.metrics import EVENT_STREAMS
from modelreg_web.views import SignInRequired, Visit

HEARTBEAT_SECONDS = 15.0
_QUEUE_EVENTS = 256
_POLL_SECONDS = 0.5


def event_json(event: event_pb2.Event) -> dict[str, object]:
    return {
        "sequence": event.sequence,
        "time": present.iso(event.time),
        "actor": event.actor,
        "action": event.action,
        "resource": present.short_name(event.resource),
        "link": present.ui_path(event.resource),
    }


async def event_stream(request: Request) -> Response:
    try:
        visit = Visit.of(request)
    except SignInRequired:
        return PlainTextResponse("sign in first", status_code=401)
    raw = request.headers.get("last-event-id", "") or request.query_params.get("after", "")
    after = int(raw) if raw.isdigit() and len(raw) < 19 else 0
    stopping: asyncio.Event = request.app.state.stopping

    async def pump(queue: asyncio.Queue[event_pb2.Event | ModelregError]) -> None:
        try:
            async for event in visit.client.watch_events(after_sequence=after, from_now=after == 0):
                await queue.put(event)
        except ModelregError as exc:
            await queue.put(exc)

    async def body() -> AsyncIterator[str]:
        queue: asyncio.Queue[event_pb2.Event | ModelregError] = asyncio.Queue(_QUEUE_EVENTS)
        task = asyncio.create_task(pump(queue))
        EVENT_STREAMS.inc()
        try:
            yield "retry: 1000\n\n"
            idle = 0.0
            while not stopping.is_set():  # set on SIGTERM: streams end so the replica can stop
                try:
                    item = await asyncio.wait_for(queue.get(), _POLL_SECONDS)
                except TimeoutError:
                    idle += _POLL_SECONDS
                    if idle >= HEARTBEAT_SECONDS:
                        idle = 0.0
                        yield ": still here\n\n"
                    continue
                idle = 0.0
                if isinstance(item, ModelregError):
                    # The browser reconnects after `retry` and resumes from its Last-Event-ID.
                    yield f"event: outage\ndata: {json.dumps({'message': str(item)[:200]})}\n\n"
                    return
                yield f"id: {item.sequence}\nevent: registry\ndata: {json.dumps(event_json(item))}\n\n"
        finally:
            EVENT_STREAMS.dec()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ModelregError):
                await task

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
