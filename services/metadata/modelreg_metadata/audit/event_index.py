"""An in-process index of the event trail's small fields, for FerretDB deployments.

Why: FerretDB v1 answers only a lone `_id` equality from its index; any other filter reads and
decodes the whole `events` collection, so ListEvents and a resource's history (GetStateAtTime)
cost 0.4-1.1 s at 10,000 versions, and grow with the trail. A FerretDB deployment runs one
metadata process (store/locks.py), whose relay places and publishes every event, so that process
can keep what a search tests -- sequence, namespace, model id, resource, action, actor, time; not
`before`/`after` -- filter it in memory (`EventScope.admits`, the one definition of a scope), and
read only the matching events, by `_id`, concurrently. MongoDB deployments search with queries
on the `events` indexes instead (`DatabaseEventSearch`); store/database.py chooses, with the
switch that chooses the version replica (store/replica.py).

Invariants:
- the index holds exactly the events 1..`high`, at position sequence - 1 (sequence numbers are
  gap-free, audit/outbox.py); an event seen beyond a hole waits in `_ahead` until the hole fills;
- it is loaded once, by the first search: one projection read in `_id` (= sequence) order, in
  batches that give the loop back. On first use rather than at start, because on FerretDB the
  read decodes every event (0.1-0.5 ms each: seconds per 10,000), which would otherwise delay
  every start and readiness, and cost its memory to a process whose trail is never read.
  Concurrent first searches wait on the same load, which is shielded from their cancellation (a
  client that gives up does not waste the read); a load that failed is resumed by the next search
  from the last event it added;
- from the moment the load starts, every event this process publishes or reads from the trail (a
  watcher following it) is added; and before answering, a search reads `_id` high+1, high+2, ...
  until one is missing (as `read_after` does), so events placed by any process are in: numbers
  are only taken in order, so a missing high+1 means no event after `high` exists yet.

Memory: resources, namespaces, model ids, actions and actors are stored once (interned); per
event, three 4-byte ids, the time (8 bytes) and five 8-byte postings (by namespace, model,
resource, action, actor), plus each distinct resource once: 169 bytes an event measured at 30,000
events with three per version (about 170 MB for 1 M events; docs/metadata-service.md).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from modelreg_metadata.audit.events import Event, EventScope, scope_of
from modelreg_metadata.audit.mongo_log import EventFeed, event_from_document, sequence_key
from modelreg_metadata.store.documents import Document

LOAD_BATCH = 2000  # events read per batch of the first load; the loop is given back after each
READ_AHEAD = 32  # sequence numbers read at once when catching up
FETCH_CONCURRENCY = 16  # matching events read by `_id` at once (more only queue in FerretDB)
SCAN_SLICE = 20_000  # candidates tested before the loop is given back
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
HEAD_FIELDS = {"seq": True, "resource": True, "action": True, "actor": True, "time": True}


class EventIndex:
    """The trail's small fields in memory; `search` as `DatabaseEventSearch.search` answers it."""

    def __init__(self, events: AsyncCollection[Document], feed: EventFeed):
        self._events = events
        self._feed = feed
        # Interned text: resources with the namespace and model id they lie under, actions, actors.
        self._resources: list[tuple[str, str, str]] = []
        self._texts: list[str] = []
        self._ids: dict[str, int] = {}
        self._resource_ids: dict[str, int] = {}
        # Columns, position = sequence - 1. Times in microseconds since the epoch: 8 bytes where a
        # `datetime` takes 56 (the trail's times are whole milliseconds, clock.py).
        self._resource = array("I")
        self._action = array("I")
        self._actor = array("I")
        self._time = array("q")
        # Postings: the sequence numbers of the events with one value of a field, ascending.
        self._by_namespace: dict[str, array[int]] = {}
        self._by_model: dict[tuple[str, str], array[int]] = {}
        self._by_resource: dict[str, array[int]] = {}
        self._by_action: dict[str, array[int]] = {}
        self._by_actor: dict[str, array[int]] = {}
        self._ahead: dict[int, tuple[str, str, str, datetime]] = {}
        self._loading: asyncio.Task[None] | None = None
        self._loaded = False
        self._following = False

    @property
    def high(self) -> int:
        """The highest sequence number up to which the index holds every event."""
        return len(self._time)

    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        await self._ready()
        await self._catch_up()
        # Events added while the loop is given back wait for the next search.
        high = self.high if before_sequence <= 0 else min(self.high, before_sequence - 1)
        candidates = self._candidates(scope, after_sequence, high, newest_first=newest_first)
        sequences = await self._matching(scope, candidates, limit)
        return await self._fetch(sequences)

    # Filling

    def _add(self, sequence: int, resource: str, action: str, actor: str, time: datetime) -> None:
        if sequence <= self.high:
            return
        if sequence > self.high + 1:
            self._ahead[sequence] = (resource, action, actor, time)
            return
        self._append(sequence, resource, action, actor, time)
        self._ahead.pop(sequence, None)
        while (waiting := self._ahead.pop(self.high + 1, None)) is not None:
            self._append(self.high + 1, *waiting)

    def _append(self, sequence: int, resource: str, action: str, actor: str, time: datetime) -> None:
        resource_id = self._resource_ids.get(resource)
        if resource_id is None:
            namespace, model_id = scope_of(resource)
            resource_id = self._resource_ids[resource] = len(self._resources)
            # Namespaces and model ids interned too: each is shared by many resources.
            namespace, model_id = self._texts[self._intern(namespace)], self._texts[self._intern(model_id)]
            self._resources.append((resource, namespace, model_id))
        resource, namespace, model_id = self._resources[resource_id]
        self._resource.append(resource_id)
        self._action.append(self._intern(action))
        self._actor.append(self._intern(actor))
        self._time.append((time - EPOCH) // MICROSECOND)
        _posting(self._by_namespace, namespace).append(sequence)
        _posting(self._by_model, (namespace, model_id)).append(sequence)
        _posting(self._by_resource, resource).append(sequence)
        _posting(self._by_action, self._texts[self._action[-1]]).append(sequence)
        _posting(self._by_actor, self._texts[self._actor[-1]]).append(sequence)

    def _intern(self, text: str) -> int:
        found = self._ids.get(text)
        if found is None:
            found = self._ids[text] = len(self._texts)
            self._texts.append(text)
        return found

    def _add_event(self, event: Event) -> None:
        self._add(event.sequence, event.resource, event.action, event.actor, event.time)

    def _add_document(self, doc: Document) -> None:
        self._add(doc["seq"], doc["resource"], doc["action"], doc.get("actor", ""), doc["time"])

    async def _ready(self) -> None:
        if self._loaded:
            return
        if self._loading is None:
            if not self._following:
                self._feed.follow(self._add_event)  # before the read: nothing placed meanwhile is missed
                self._following = True
            self._loading = asyncio.create_task(self._load(), name="event-index-load")
        loading = self._loading
        try:
            await asyncio.shield(loading)  # a waiter's cancellation leaves the load running
        except Exception:
            if self._loading is loading:
                self._loading = None  # the next search resumes it
            raise

    async def _load(self) -> None:
        query: Document = {"_id": {"$gt": sequence_key(self.high)}} if self.high else {}
        cursor = self._events.find(query, HEAD_FIELDS, batch_size=LOAD_BATCH).sort("_id", ASCENDING)
        count = 0
        async for doc in cursor:
            self._add_document(doc)
            count += 1
            if count % LOAD_BATCH == 0:
                await asyncio.sleep(0)  # decoding a batch is CPU work: let requests in between
        self._loaded = True

    async def _catch_up(self) -> None:
        """Reads high+1, high+2, ... by `_id` until one is missing: one read when nothing is new."""
        count = 1
        while True:
            start = self.high + 1
            docs = await asyncio.gather(
                *(
                    self._events.find_one({"_id": sequence_key(n)}, HEAD_FIELDS)
                    for n in range(start, start + count)
                )
            )
            for doc in docs:
                if doc is None:
                    return
                self._add_document(doc)
            count = READ_AHEAD

    # Answering

    def _candidates(self, scope: EventScope, after: int, high: int, *, newest_first: bool) -> Iterator[int]:
        """Sequence numbers in (`after`, `high`], ascending or descending, that include every
        event in `scope`: the posting of its most selective field, or every number."""
        postings: list[array[int] | None]
        if scope.resource:
            postings = [self._by_resource.get(scope.resource)]
        elif scope.model_id and scope.namespace:
            postings = [self._by_model.get((scope.namespace, scope.model_id))]
        elif scope.namespace:
            postings = [self._by_namespace.get(scope.namespace)]
        elif scope.actor:
            postings = [self._by_actor.get(scope.actor)]
        elif scope.actions:
            postings = [self._by_action.get(action) for action in scope.actions]
        elif scope.visible_namespaces is not None:
            postings = [self._by_namespace.get(namespace) for namespace in scope.visible_namespaces]
        elif newest_first:
            return iter(range(high, after, -1))
        else:
            return iter(range(after + 1, high + 1))
        parts = [_between(posting, after, high, newest_first) for posting in postings if posting is not None]
        return parts[0] if len(parts) == 1 else heapq.merge(*parts, reverse=newest_first)

    async def _matching(self, scope: EventScope, candidates: Iterator[int], limit: int) -> list[int]:
        # A scope without time bounds admits any time: then no `datetime` is built per candidate.
        timed = scope.start_time is not None or scope.end_time is not None or scope.until is not None
        found: list[int] = []
        for tested, sequence in enumerate(candidates, 1):
            if len(found) == limit:
                break
            i = sequence - 1
            resource, namespace, model_id = self._resources[self._resource[i]]
            if scope.admits(
                namespace=namespace,
                model_id=model_id,
                resource=resource,
                action=self._texts[self._action[i]],
                actor=self._texts[self._actor[i]],
                time=EPOCH + self._time[i] * MICROSECOND if timed else EPOCH,
            ):
                found.append(sequence)
            if tested % SCAN_SLICE == 0:
                await asyncio.sleep(0)
        return found

    async def _fetch(self, sequences: list[int]) -> list[Event]:
        """The whole events, from the feed's memory or by `_id`."""
        events: list[Event | None] = [self._feed.recent(n) for n in sequences]
        missing = [i for i, event in enumerate(events) if event is None]
        for start in range(0, len(missing), FETCH_CONCURRENCY):
            part = missing[start : start + FETCH_CONCURRENCY]
            docs = await asyncio.gather(
                *(self._events.find_one({"_id": sequence_key(sequences[i])}) for i in part)
            )
            for i, doc in zip(part, docs, strict=True):
                if doc is None:  # the trail is append-only: an indexed event cannot vanish
                    raise RuntimeError(f"event {sequences[i]} is indexed but not in the trail")
                events[i] = event_from_document(doc)
        return [event for event in events if event is not None]


def _posting(postings: dict[Any, array[int]], key: Any) -> array[int]:
    found = postings.get(key)
    if found is None:
        found = postings[key] = array("q")
    return found


def _between(posting: array[int], after: int, high: int, newest_first: bool) -> Iterator[int]:
    """The posting's numbers in (`after`, `high`]: postings are ascending, so both ends are a
    bisection and either direction is a walk, however many events lie outside."""
    start, end = bisect.bisect_right(posting, after), bisect.bisect_right(posting, high)
    steps = range(end - 1, start - 1, -1) if newest_first else range(start, end)
    return (posting[i] for i in steps)
