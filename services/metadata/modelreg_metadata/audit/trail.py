"""Reading the audit trail (`AuditTrail`): list, watch, and a resource's state at a point in time
rebuilt from its events (audit/replay.py); which events a list or a watch wants is an `EventScope`
(audit/events.py).

Apart from the registry because it only reads, and reads the event log rather than the stores:
events reach the log through the outbox relay (audit/outbox.py), after the writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from modelreg_api.errors import InvalidArgument, NotFound, Unavailable, quoted
from modelreg_api.names import AliasName, ModelVersionName
from modelreg_common import paging

from modelreg_metadata.audit import replay
from modelreg_metadata.audit.events import Action, Event, EventScope, Json
from modelreg_metadata.domain import Alias, ModelVersion
from modelreg_metadata.filtering import parse_order_by
from modelreg_metadata.store import EventLog

WATCH_POLL_SECONDS = 0.15  # how long a watcher waits for this process's relay before re-reading
WATCH_BATCH = 256
ORDERS = "`sequence` (oldest first) or `sequence desc` (newest first)"


def is_newest_first(order_by: str) -> bool:
    """ListEvents' `order_by`: events have one order, by sequence number, in either direction."""
    keys = parse_order_by(order_by)
    if not keys:
        return False
    if len(keys) != 1 or keys[0].path.segments != ("sequence",):
        raise InvalidArgument("order_by", f"{quoted(order_by)} is not {ORDERS}")
    return keys[0].descending


class AuditTrail:
    """Reading the event trail: list, watch, and the state of a resource at a point in time."""

    def __init__(self, events: EventLog):
        self._events = events

    async def list_events(
        self, scope: EventScope, *, after_sequence: int, page_size: int, page_token: str, order_by: str = ""
    ) -> tuple[list[Event], str]:
        """A page of the events in `scope`, oldest first or (`order_by="sequence desc"`) newest
        first. The token holds the last sequence returned and is bound to the query, order
        included: the next page continues in the same order, after (or before) that number."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        newest_first = is_newest_first(order_by)
        limit = paging.page_size(page_size)
        query = f"events:{scope!r}:{after_sequence}:{'desc' if newest_first else 'asc'}"
        key = paging.decode_token(page_token, query)
        before_sequence = 0
        if key is not None:
            if len(key) != 1 or not isinstance(key[0], int) or key[0] < 1:
                raise InvalidArgument("page_token", "is not a token returned by this method")
            if newest_first:
                before_sequence = key[0]
            else:
                after_sequence = max(after_sequence, key[0])
        await self._events.settle()
        found = await self._events.search(
            scope, after_sequence, limit + 1, before_sequence=before_sequence, newest_first=newest_first
        )
        token = paging.encode_token(query, [found[limit - 1].sequence]) if len(found) > limit else ""
        return found[:limit], token

    async def watch_start(self, *, after_sequence: int, from_now: bool) -> int:
        """The sequence number a watch starts after: the given one, or the latest for `from_now`."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        if not from_now:
            return after_sequence
        await self._events.settle()
        return await self._events.latest_sequence()

    async def watch_events(
        self, scope: EventScope, *, after_sequence: int, from_now: bool
    ) -> AsyncIterator[Event]:
        """Every event after the cursor, in order and without gaps, until the caller goes away."""
        cursor = await self.watch_start(after_sequence=after_sequence, from_now=from_now)
        probe = True  # also look in the database for events this process has not seen placed
        while True:
            grown = self._events.growth()  # taken before reading: a publish meanwhile still wakes us
            batch = await self._events.read_after(cursor, WATCH_BATCH, probe=probe)
            probe = False
            for event in batch:
                if event.sequence != cursor + 1:  # read_after never skips; a gap would be a bug
                    raise RuntimeError(f"event trail gap: expected {cursor + 1}, read {event.sequence}")
                cursor = event.sequence
                if scope.matches(event):
                    yield event
            if batch:
                continue
            if self._events.closed:
                raise Unavailable(
                    f"the metadata service is shutting down; reconnect with after_sequence={cursor}",
                    reason="SHUTTING_DOWN",
                    metadata={"last_sequence": str(cursor)},
                )
            # Events placed by this process wake us at once (and are in memory); the timeout
            # makes the next read probe the database for events placed by other processes.
            try:
                await asyncio.wait_for(grown.wait(), WATCH_POLL_SECONDS)
            except TimeoutError:
                probe = True

    async def _history(self, resource: str, moment: datetime, actions: Sequence[str] = ()) -> list[Event]:
        scope = EventScope(resource=resource, actions=tuple(actions), until=moment)
        found: list[Event] = []
        after = 0
        while True:
            page = await self._events.search(scope, after, paging.MAX_PAGE_SIZE)
            found += page
            if len(page) < paging.MAX_PAGE_SIZE:
                return found
            after = page[-1].sequence

    async def version_at(self, name: ModelVersionName, moment: datetime) -> tuple[ModelVersion, Event]:
        history = await self._history(str(name), moment)
        state: Json | None = None
        for event in history:
            if event.action == Action.MODEL_VERSION_CREATED:
                state = dict(event.after)
            elif event.action == Action.MODEL_VERSION_PURGED:
                state = None
            elif state is not None:
                state = replay.apply(state, event)
        if state is None:
            purged = bool(history) and history[-1].action == Action.MODEL_VERSION_PURGED
            raise NotFound(
                f"model version {name} {'had been purged' if purged else 'did not exist'} "
                f"at {moment.isoformat()}",
                reason="NOT_FOUND_AT_TIME",
            )
        return replay.version_from_state(name, state, history[-1].time), history[-1]

    async def alias_at(self, name: AliasName, moment: datetime) -> tuple[Alias, Event]:
        moves = (Action.ALIAS_CREATED, Action.ALIAS_MOVED, Action.ALIAS_DELETED)
        history = await self._history(str(name), moment, [a.value for a in moves])
        if not history or history[-1].action == Action.ALIAS_DELETED:
            raise NotFound(f"alias {name} did not exist at {moment.isoformat()}", reason="NOT_FOUND_AT_TIME")
        last = history[-1]
        number = last.after.get("version_number")
        if number is None:  # a move that changed only the actor: the number is in an earlier event
            number = next(e.after["version_number"] for e in reversed(history) if "version_number" in e.after)
        alias = Alias(name=name, version_number=int(number), update_time=last.time, update_actor=last.actor)
        return alias, last
