"""The event trail on MongoDB: the `events` collection, read by sequence, listed with filters, and
followed.

Each event document's `_id` is its sequence number as 16 zero-padded digits. Why text: FerretDB
v1 answers a lone string `_id` equality from SQLite's index and filters everything else in Go
after reading the whole collection, so reading "the event after n" by `_id` is one index lookup
on FerretDB as on MongoDB, however long the trail grows. Sequence numbers are gap-free (see
audit/outbox.py), which is what makes "read n+1, n+2, ... until one is missing" a complete scan.

`EventFeed` is the in-process side: the relay publishes every event it places, watchers wait on
it (with a short poll as the fallback for events placed by other processes) and take recent
events from its memory instead of the database; its followers (the event index) get every event
published or read from the trail.

Searches (ListEvents, a resource's history) go through `MongoEventLog.searcher`: the database and
its indexes (`DatabaseEventSearch`), or on FerretDB the process's index of the trail
(audit/event_index.py), chosen by store/database.py with the same switch as the version replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from modelreg_metadata.audit.events import Event, EventScope, scope_of
from modelreg_metadata.store.documents import Document

SEQUENCE_DIGITS = 16
READ_AHEAD = 32  # sequence numbers read at once when catching up from the database
RECENT_EVENTS = 10_000  # events kept in memory for watchers
SETTLE_SECONDS = 2.0  # how long a reader of the trail waits for the events of acknowledged changes


def sequence_key(sequence: int) -> str:
    return f"{sequence:0{SEQUENCE_DIGITS}d}"


def event_document(event: Event, sequence: int) -> Document:
    namespace, model_id = scope_of(event.resource)
    return {
        "_id": sequence_key(sequence),
        "seq": sequence,
        "event_id": event.id,
        "time": event.time,
        "actor": event.actor,
        "request_id": event.request_id,
        "resource": event.resource,
        "action": event.action,
        "namespace": namespace,
        "model_id": model_id,
        # JSON text, not sub-documents: before/after hold user keys that BSON field names cannot.
        "before": json.dumps(event.before, ensure_ascii=False, separators=(",", ":")),
        "after": json.dumps(event.after, ensure_ascii=False, separators=(",", ":")),
        "authentication": event.authentication,
        "via": event.via,
    }


def event_from_document(doc: Document) -> Event:
    return Event(
        id=doc["event_id"],
        time=doc["time"],
        actor=doc.get("actor", ""),
        request_id=doc.get("request_id", ""),
        resource=doc["resource"],
        action=doc["action"],
        before=json.loads(doc.get("before") or "{}"),
        after=json.loads(doc.get("after") or "{}"),
        sequence=doc["seq"],
        authentication=doc.get("authentication", ""),
        via=doc.get("via", ""),
    )


class EventFeed:
    """Recent events of this process and a signal for "the trail grew"."""

    def __init__(self, capacity: int = RECENT_EVENTS):
        self._capacity = capacity
        self._recent: OrderedDict[int, Event] = OrderedDict()
        self._grown = asyncio.Event()
        self._followers: list[Callable[[Event], None]] = []
        self.latest = 0  # the highest sequence number known to be in the trail
        self.closed = False

    def follow(self, follower: Callable[[Event], None]) -> None:
        """From now on, `follower` gets every event published or read from the trail."""
        self._followers.append(follower)

    def publish(self, event: Event) -> None:
        self._recent[event.sequence] = event
        while len(self._recent) > self._capacity:
            self._recent.popitem(last=False)
        self.found(event)

    def found(self, event: Event) -> None:
        """An event in the trail (placed by this process, or read from the database)."""
        for follower in self._followers:
            follower(event)
        self.saw(event.sequence)

    def saw(self, sequence: int) -> None:
        self.latest = max(self.latest, sequence)
        self._grown.set()
        self._grown = asyncio.Event()

    def recent(self, sequence: int) -> Event | None:
        return self._recent.get(sequence)

    def growth(self) -> asyncio.Event:
        """Set at the next publish (or close): take it BEFORE reading, then wait on it."""
        return self._grown

    def close(self) -> None:
        """Wakes every watcher for good: the service is shutting down."""
        self.closed = True
        self._grown.set()


class EventSearch(Protocol):
    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        """As `EventLog.search` (store/__init__.py)."""
        ...


class DatabaseEventSearch:
    """Searches as queries: MongoDB answers them from the `events` indexes (store/database.py)."""

    def __init__(self, events: AsyncCollection[Document]):
        self._events = events

    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        query = scope_condition(scope)
        bounds: Document = {}
        if after_sequence:
            bounds["$gt"] = after_sequence
        if before_sequence:
            bounds["$lt"] = before_sequence
        if bounds:
            query["seq"] = bounds
        # The indexes are (field, seq): either direction walks one of them, in order.
        order = DESCENDING if newest_first else ASCENDING
        cursor = self._events.find(query).sort("seq", order).limit(limit)
        return [event_from_document(doc) async for doc in cursor]


class MongoEventLog:
    def __init__(self, events: AsyncCollection[Document], feed: EventFeed):
        self._events = events
        self.feed = feed
        self.searcher: EventSearch = DatabaseEventSearch(events)
        # Set by the database to its relay's `placed`: waits until this process's committed
        # changes have their events in the trail.
        self.placement: Callable[[], Awaitable[None]] | None = None

    async def settle(self) -> None:
        """Waits until every change this process acknowledged so far has its event in the trail:
        a client that changed something and then reads the trail or watches from now finds the
        trail up to its change (read your writes)."""
        if self.placement is not None:
            # Bounded: a database that stopped answering must not hang the reader.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_SECONDS):
                    await self.placement()

    async def get(self, sequence: int) -> Event | None:
        event = self.feed.recent(sequence)
        if event is not None:
            return event
        doc = await self._events.find_one({"_id": sequence_key(sequence)})
        if doc is None:
            return None
        event = event_from_document(doc)
        self.feed.found(event)
        return event

    async def exists(self, sequence: int) -> bool:
        if sequence <= self.feed.latest:
            return True
        return await self._events.find_one({"_id": sequence_key(sequence)}, {"_id": True}) is not None

    async def latest_sequence(self) -> int:
        """The highest sequence number in the trail, by point reads only.

        The trail is 1..n without gaps, so an exponential probe from the last known number and a
        binary search find n in O(log n) `_id` lookups (a sort would scan the whole collection on
        FerretDB).
        """
        low = self.feed.latest  # known to exist (0 stands for "before the first")
        step = 1
        while await self.exists(low + step):
            low += step
            step *= 2
        high = low + step  # known not to exist
        while high - low > 1:
            middle = (low + high) // 2
            if await self.exists(middle):
                low = middle
            else:
                high = middle
        self.feed.saw(low)
        return low

    async def read_after(self, sequence: int, limit: int, *, probe: bool) -> list[Event]:
        """Events sequence+1, sequence+2, ... up to `limit`, stopping before the first missing one.

        A missing number means "not placed yet" (numbers are only taken in order), so the events
        returned never skip one: the caller waits and asks again from the last it got. Recent
        events come from memory; the database is read for older ones (a watcher catching up) and,
        when `probe` is set, to look for events placed by other processes since.
        """
        found: list[Event] = []
        while len(found) < limit:
            event = self.feed.recent(sequence + len(found) + 1)
            if event is None:
                break
            found.append(event)
        start = sequence + len(found) + 1
        if found or (start > self.feed.latest and not probe):
            return found  # nothing newer is known: do not touch the database
        if start > self.feed.latest:  # a probe: one read says whether anything new exists at all
            doc = await self._events.find_one({"_id": sequence_key(start)})
            if doc is None:
                return found
            found.append(event_from_document(doc))
            self.feed.found(found[-1])
            start += 1
        count = max(0, min(READ_AHEAD, limit - len(found)))
        # Read concurrently, keep the prefix: a slot read as missing ends the batch even if a later
        # one (placed meanwhile) was read as present.
        docs = await asyncio.gather(
            *(self._events.find_one({"_id": sequence_key(n)}) for n in range(start, start + count))
        )
        for doc in docs:
            if doc is None:
                break
            found.append(event_from_document(doc))
            self.feed.found(found[-1])
        return found

    def growth(self) -> asyncio.Event:
        return self.feed.growth()

    @property
    def closed(self) -> bool:
        return self.feed.closed

    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        return await self.searcher.search(
            scope, after_sequence, limit, before_sequence=before_sequence, newest_first=newest_first
        )


def scope_condition(scope: EventScope) -> Document:
    """The query for the events in `scope` (what `EventScope.admits` tests, for MongoDB's indexes)."""
    condition: Document = {}
    if scope.namespace:
        condition["namespace"] = scope.namespace
    if scope.model_id:
        condition["model_id"] = scope.model_id
    if scope.resource:
        condition["resource"] = scope.resource
    if scope.actions:
        actions = list(scope.actions)
        condition["action"] = actions[0] if len(actions) == 1 else {"$in": actions}
    if scope.actor:
        condition["actor"] = scope.actor
    window: Document = {}
    if scope.start_time is not None:
        window["$gte"] = scope.start_time
    if scope.end_time is not None:
        window["$lt"] = scope.end_time
    if scope.until is not None:
        window["$lte"] = scope.until
    if window:
        condition["time"] = window
    visible = scope.visible_namespaces
    if visible is not None and not scope.namespace:
        condition["namespace"] = {"$in": list(visible)}
    elif visible is not None and scope.namespace not in visible:
        condition["namespace"] = {"$in": []}  # a namespace the caller cannot read: nothing
    return condition
