"""The outbox: how every committed change gets exactly one event without transactions.

Why: FerretDB (and a standalone MongoDB) has no multi-document transactions, so a change and its
event cannot be two writes that commit together. Instead the event travels INSIDE the change:
every write of a namespace, model or version document also `$push`es the event into that
document's `outbox` array (an insert carries `outbox: [event]`). One single-document write, so:
- a committed change always has its event (in the outbox, then in the trail);
- a refused or failed write wrote nothing, so no event exists for a change that did not happen.

The relay then moves each outbox entry into the `events` collection and `$pull`s it from the
document. It is woken in-process right after each commit, and sweeps every document with a
leftover entry at start-up (a crash between the two writes) and periodically (entries written by
other processes that died). Its guarantees:
- sequence numbers are gap-free and only grow: an event is inserted with `_id` = the last
  sequence number known to exist + 1, and the unique `_id` makes concurrent relays (other
  processes) collide instead of sharing a number; the loser reads the slot and tries the next.
  A number is only ever tried after its predecessor was seen, so the trail is always 1..n;
- no duplicates: `event_id` is unique, so re-relaying an entry after a crash between the insert
  and the `$pull` fails, and the relay recognises its own event and just pulls the entry;
- per resource, sequence order is commit order: a document's outbox is in commit order and the
  relay places its entries in that order; within one process, the relay also follows the order
  in which commits happened across documents.
There is no update or delete of events anywhere: the trail is append-only.

Speed. With one writing process (FerretDB deployments, see store/locks.py), every entry a
document holds was committed by this process and queued here in commit order, so the relay
places whatever is queued in one `insert_many` (consecutive numbers), publishes it to watchers,
and only then pulls the entries: a burst costs one insert, not one per event. With several
processes (MongoDB), each queued document's outbox is read first so that entries another
process committed earlier are placed before ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from modelreg_metadata.audit import Event
from modelreg_metadata.faults import FaultPoint, Faults
from modelreg_metadata.store.documents import Document
from modelreg_metadata.store.events import (
    EventFeed,
    MongoEventLog,
    event_document,
    event_from_json,
    event_json,
    sequence_key,
)

log = structlog.get_logger("modelreg.metadata.relay")

RETRY_SECONDS = 0.5
BATCH = 256  # entries placed by one insert_many
# A periodic sweep leaves entries younger than this to the process that wrote them.
SWEEP_GRACE = timedelta(seconds=5)


def outbox_entry(event: Event) -> Document:
    """What a write pushes into its document's `outbox` (`time` serves the sweep's index)."""
    return {"id": event.id, "time": event.time, "action": event.action, "event": event_json(event)}


class Relay:
    def __init__(
        self,
        collections: Mapping[str, AsyncCollection[Document]],
        events: AsyncCollection[Document],
        log_: MongoEventLog,
        *,
        faults: Faults,
        sweep_seconds: float,
        single_writer: bool,
    ):
        self._collections = dict(collections)
        self._events = events
        self._log = log_
        self._faults = faults
        # One writing process: leftovers can only come from its own earlier life (a crash), so
        # the sweep at start-up is enough; the periodic sweep (a collection scan on FerretDB) is off.
        self._sweep_seconds = float("inf") if single_writer else sweep_seconds
        self._single_writer = single_writer
        self._queue: deque[tuple[str, str, Document]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is queued
        self._task: asyncio.Task[None] | None = None
        self._last = 0  # the highest sequence number known to exist
        self._committed = 0  # entries handed over by committed() ...
        self._placed = 0  # ... and those of them in the trail since
        self._progress = asyncio.Event()  # set whenever `_placed` grows

    @property
    def feed(self) -> EventFeed:
        return self._log.feed

    def committed(self, collection: str, key: str, entry: Document) -> None:
        """Called by the store right after a write carrying `entry` succeeded."""
        self._faults.reached(FaultPoint.CRASH_AFTER_COMMIT, entry["action"])
        self._queue.append((collection, key, entry))
        self._committed += 1
        self._idle.clear()
        self._wake.set()

    async def placed(self) -> None:
        """Returns once every change committed in this process before the call has its event in
        the trail."""
        target = self._committed
        while self._placed < target:
            self._progress.clear()
            await self._progress.wait()

    async def start(self) -> None:
        self._last = await self._log.latest_sequence()
        await self.sweep(everything=True)
        self._task = asyncio.create_task(self._run(), name="event-relay")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Places what is queued (for up to `drain_seconds`), then stops; the rest waits in the
        outboxes for the next start."""
        self.feed.close()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_seconds)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self._sweep_seconds
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), min(3600.0, max(0.0, next_sweep - time.monotonic()))
                    )
            try:
                while self._queue:
                    if self._single_writer:
                        batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                        await self._relay_batch(batch)
                        for _ in batch:
                            self._queue.popleft()
                        self._placed += len(batch)
                        self._progress.set()
                    else:
                        collection, key, entry = self._queue[0]
                        await self._relay_document(collection, key, entry["id"])
                        self._queue.popleft()
                        self._placed += 1
                        self._progress.set()
                if time.monotonic() >= next_sweep:
                    await self.sweep(everything=False)
                    next_sweep = time.monotonic() + self._sweep_seconds
            except Exception:
                # The entries stay in their outboxes and in the queue: retry until the database
                # answers again (nothing is lost meanwhile, only delayed).
                log.exception("relaying events failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def sweep(self, *, everything: bool) -> None:
        """Relays every outbox entry left in any document (all, or those older than the grace)."""
        moment = datetime.now(UTC)
        cutoff = moment + SWEEP_GRACE if everything else moment - SWEEP_GRACE
        swept = 0
        for name, collection in self._collections.items():
            cursor = collection.find({"outbox.time": {"$lt": cutoff}}, {"_id": True})
            keys = [doc["_id"] async for doc in cursor]
            for key in keys:
                await self._relay_document(name, key, None)
            swept += len(keys)
        if swept:
            log.info("relayed leftover outbox entries", documents=swept)

    async def _relay_document(self, collection: str, key: str, until: str | None) -> None:
        """Places the document's outbox entries in order, up to and including `until`."""
        doc = await self._collections[collection].find_one({"_id": key}, {"outbox": True})
        for entry in (doc or {}).get("outbox", []):
            await self._relay_entry(collection, key, entry)
            if entry["id"] == until:
                return

    async def _relay_batch(self, batch: list[tuple[str, str, Document]]) -> None:
        """Places queued entries (one writing process: nothing else is in their outboxes)."""
        events = [event_from_json(entry["event"]) for _, _, entry in batch]
        first = self._last + 1
        docs = [event_document(event, first + i) for i, event in enumerate(events)]
        try:
            await self._events.insert_many(docs, ordered=True)
            inserted = len(docs)
        except BulkWriteError as exc:  # ordered: everything before the first failure is in
            inserted = exc.details.get("nInserted", 0)
        for i, event in enumerate(events[:inserted]):
            self._last = first + i
            self.feed.publish(Event(**{**event.__dict__, "sequence": first + i}))
            self._faults.reached(FaultPoint.CRASH_AFTER_EVENT_INSERT, event.action)
        # One bulk command per collection: one round trip (and one turn of FerretDB's write lock)
        # for the whole burst instead of one per entry.
        pulls: dict[str, list[UpdateOne]] = {}
        for collection, key, entry in batch[:inserted]:
            pulls.setdefault(collection, []).append(UpdateOne({"_id": key}, {"$pull": {"outbox": entry}}))
        await asyncio.gather(
            *(self._collections[name].bulk_write(updates, ordered=False) for name, updates in pulls.items())
        )
        for collection, key, entry in batch[inserted:]:
            # A number or an event id was taken (a relay of an earlier life of this process, a
            # test's second process): the careful path, one at a time.
            await self._relay_entry(collection, key, entry)

    async def _relay_entry(self, collection: str, key: str, entry: Document) -> None:
        event = event_from_json(entry["event"])
        while True:
            sequence = self._last + 1
            try:
                await self._events.insert_one(event_document(event, sequence))
            except DuplicateKeyError:
                holder = await self._events.find_one({"_id": sequence_key(sequence)}, {"event_id": True})
                if holder is None:
                    break  # the slot is free, so the event id collided: placed before a crash
                self._last = sequence  # another relay took the number; it exists, try the next
                self.feed.saw(sequence)
                if holder["event_id"] == event.id:
                    break
                continue
            self._last = sequence
            self.feed.publish(Event(**{**event.__dict__, "sequence": sequence}))
            self._faults.reached(FaultPoint.CRASH_AFTER_EVENT_INSERT, event.action)
            break
        # The whole entry as stored: FerretDB v1's $pull matches array elements by equality only.
        await self._collections[collection].update_one({"_id": key}, {"$pull": {"outbox": entry}})
