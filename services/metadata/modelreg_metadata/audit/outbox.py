"""The outbox: how every committed change gets exactly one event without transactions.

Why: FerretDB (and a standalone MongoDB) has no multi-document transactions, so a change and its
event cannot be two writes that commit together. Instead the event travels INSIDE the change:
every write of a namespace, model or version document also `$push`es the event into that
document's `outbox` array (an insert carries `outbox: [event]`; the entry is audit/outbox_entry.py).
One single-document write, so:
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
places whatever is queued in one `insert_many` (consecutive numbers) and publishes it to
watchers: a burst costs one insert, not one per event. It also defers the `$pull`s: on FerretDB
each one rewrites the whole document, which used to double the cost of a create. A placed entry
is harmless where it is (its event is in the trail; a later sweep recognises it and only pulls
it), so the relay pulls placed entries
- when their document is written again (with its next batch: a document never holds more than
  the entries of its last writes),
- when nothing was committed for IDLE_PULL_SECONDS (in slices, stopping as soon as work comes),
- at once, oldest first, when more than MAX_PLACED wait (this bounds memory here and the work of
  the start-up after a crash), and at a graceful stop.
After each slice it records in `event_relay` the sequence number up to which every entry is
pulled ("pulled through"). A start-up after a crash reads the events after that number by `_id`
(a few thousand point reads at most) to recognise which leftover entries are placed: those are
only pulled, the others are placed. An entry not recognised that way is still never placed twice:
its insert collides on the unique event id and takes the careful path below.
With several processes (MongoDB), each queued document's outbox is read first so that entries
another process committed earlier are placed before ours, and pulled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog
from modelreg_common.observability.metrics import count_database_error
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from modelreg_metadata.audit.events import Event
from modelreg_metadata.audit.mongo_log import EventFeed, MongoEventLog, event_document, sequence_key
from modelreg_metadata.audit.outbox_entry import event_from_json
from modelreg_metadata.faults import FaultPoint, Faults
from modelreg_metadata.metrics import EVENT_RELAY_LAG, EVENT_RELAY_PENDING, EVENTS_RELAYED
from modelreg_metadata.store.documents import MAX_UPDATES_PER_COMMAND, Document

log = structlog.get_logger("modelreg.metadata.relay")

RETRY_SECONDS = 0.5
BATCH = 256  # entries placed by one insert_many
# A periodic sweep leaves entries younger than this to the process that wrote them.
SWEEP_GRACE = timedelta(seconds=5)
# One writing process: while entries come in bursts (the last round placed more than one), the
# relay waits this long before placing, so that one insert places more of them.
LINGER_SECONDS = 0.01
# One writing process: placed entries are pulled after this long without a commit...
IDLE_PULL_SECONDS = 0.5
# ...in slices of this many documents (one bulk write each, holding FerretDB's write lock for
# tens of milliseconds, not seconds)...
PULL_SLICE = MAX_UPDATES_PER_COMMAND
# ...or at once, oldest first, while more entries than this wait to be pulled.
MAX_PLACED = 4096
# A start-up reads at most this many events (by `_id`) to recognise leftover entries as placed;
# an entry placed earlier than that is recognised by its insert colliding on the event id.
MAX_RECOGNISED = 2 * MAX_PLACED
READ_CONCURRENCY = 64
PULLED_THROUGH = "pulled_through"  # the `event_relay` document: every entry up to it is pulled

_Document = tuple[str, str]  # (collection, _id)


class Relay:
    def __init__(
        self,
        collections: Mapping[str, AsyncCollection[Document]],
        events: AsyncCollection[Document],
        log_: MongoEventLog,
        state: AsyncCollection[Document],
        *,
        faults: Faults,
        sweep_seconds: float,
        single_writer: bool,
    ):
        self._collections = dict(collections)
        self._events = events
        self._log = log_
        self._state = state
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
        # One writing process: entries placed and not pulled yet, per document, in sequence order
        # (the dict keeps documents in the order of their first such entry: oldest first).
        self._unpulled: dict[_Document, list[tuple[int, Document]]] = {}
        self._unpulled_count = 0
        self._rewritten: set[_Document] = set()  # documents written again since entries were placed
        self._pulled_through = 0  # the last number recorded in `event_relay`
        self._crowded = False  # the last round placed more than one entry

    @property
    def feed(self) -> EventFeed:
        return self._log.feed

    def committed(self, collection: str, key: str, entry: Document) -> None:
        """Called by the store right after a write carrying `entry` succeeded."""
        self._faults.reached(FaultPoint.CRASH_AFTER_COMMIT, entry["action"])
        if (collection, key) in self._unpulled:
            self._rewritten.add((collection, key))
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

    def pending(self) -> int:
        """Changes committed in this process whose event is not in the trail yet."""
        return self._committed - self._placed

    def lag_seconds(self) -> float:
        """How long the oldest of those changes has waited (0 when none waits). Read by the
        metrics thread: the queue may change meanwhile, so it tolerates an empty one."""
        try:
            committed_at = self._queue[0][2]["time"]
        except IndexError:
            return 0.0
        if committed_at.tzinfo is None:
            committed_at = committed_at.replace(tzinfo=UTC)
        return max(0.0, float((datetime.now(UTC) - committed_at).total_seconds()))

    async def start(self) -> None:
        EVENT_RELAY_PENDING.set_function(self.pending)
        EVENT_RELAY_LAG.set_function(self.lag_seconds)
        self._last = await self._log.latest_sequence()
        if self._single_writer:
            await self._recover()
        else:
            await self.sweep(everything=True)
        self._task = asyncio.create_task(self._run(), name="event-relay")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Places what is queued and pulls what is placed (for up to `drain_seconds` in all), then
        stops; the rest waits in the outboxes for the next start."""
        deadline = time.monotonic() + drain_seconds
        self.feed.close()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_seconds)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._unpulled:
            # Best effort: whatever is left is recognised and pulled by the next start.
            with contextlib.suppress(TimeoutError, PyMongoError):
                await asyncio.wait_for(self._pull_all(), max(0.1, deadline - time.monotonic()))

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self._sweep_seconds
        while True:
            idle = False
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                wait = min(3600.0, max(0.0, next_sweep - time.monotonic()))
                if self._unpulled:
                    wait = min(wait, IDLE_PULL_SECONDS)
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    idle = not self._queue
            try:
                if self._crowded and self._queue:
                    await asyncio.sleep(LINGER_SECONDS)
                while self._queue:
                    if self._single_writer:
                        batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                        self._crowded = len(batch) > 1
                        await self._relay_batch(batch)
                        for _ in batch:
                            self._queue.popleft()
                        self._placed += len(batch)
                        EVENTS_RELAYED.inc(len(batch))
                        self._progress.set()
                        await self._pull([d for d in self._rewritten if d in self._unpulled])
                        await self._pull_overflow()
                    else:
                        collection, key, entry = self._queue[0]
                        await self._relay_document(collection, key, entry["id"])
                        self._queue.popleft()
                        self._placed += 1
                        EVENTS_RELAYED.inc()
                        self._progress.set()
                while idle and self._unpulled and not self._queue:
                    await self._pull(list(self._unpulled)[:PULL_SLICE])
                if time.monotonic() >= next_sweep:
                    await self.sweep(everything=False)
                    next_sweep = time.monotonic() + self._sweep_seconds
            except Exception as exc:
                # The entries stay in their outboxes and in the queue: retry until the database
                # answers again (nothing is lost meanwhile, only delayed).
                count_database_error(exc)
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

    async def _recover(self) -> None:
        """The start-up sweep of the one writing process: recognises the leftover entries whose
        event is in the trail (only pulled) and places the others, before any new change."""
        leftovers: dict[_Document, list[Document]] = {}
        for name, collection in self._collections.items():
            async for doc in collection.find({"outbox.id": {"$exists": True}}, {"outbox": True}):
                leftovers[(name, doc["_id"])] = doc["outbox"]
        count = sum(len(entries) for entries in leftovers.values())
        if count:
            state = await self._state.find_one({"_id": PULLED_THROUGH})
            # Without a record (a trail written by a version that pulled at once), the leftovers
            # can only be the last few events.
            through = state["sequence"] if state is not None else self._last - count
            placed = await self._event_ids(max(through, self._last - MAX_RECOGNISED, 0) + 1, self._last)
            done = {
                document: [entry for entry in entries if entry["id"] in placed]
                for document, entries in leftovers.items()
            }
            await self._pull_entries({document: entries for document, entries in done.items() if entries})
            pending = [
                [(document[0], document[1], entry) for entry in entries if entry["id"] not in placed]
                for document, entries in leftovers.items()
            ]
            # Per document in outbox (commit) order; across documents by time, as committed.
            ordered = list(heapq.merge(*pending, key=lambda item: item[2]["time"]))
            for start in range(0, len(ordered), BATCH):
                await self._relay_batch(ordered[start : start + BATCH])
            await self._pull_overflow()
            log.info(
                "relayed leftover outbox entries",
                documents=len(leftovers),
                already_placed=count - len(ordered),
                placed=len(ordered),
            )
        await self._record_pulled()

    async def _event_ids(self, first: int, last: int) -> set[str]:
        """The event ids of sequence numbers first..last, by `_id` point reads."""
        ids: set[str] = set()
        for start in range(first, last + 1, READ_CONCURRENCY):
            docs = await asyncio.gather(
                *(
                    self._events.find_one({"_id": sequence_key(n)}, {"event_id": True})
                    for n in range(start, min(last, start + READ_CONCURRENCY - 1) + 1)
                )
            )
            ids.update(doc["event_id"] for doc in docs if doc is not None)
        return ids

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
        for i, (collection, key, entry) in enumerate(batch[:inserted]):
            self._unpulled.setdefault((collection, key), []).append((first + i, entry))
        self._unpulled_count += inserted
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

    async def _pull(self, documents: list[_Document]) -> None:
        """Pulls the placed entries of `documents` (one writing process), then records how far
        everything is pulled."""
        if not documents:
            return
        await self._pull_entries({d: [entry for _, entry in self._unpulled[d]] for d in documents})
        for document in documents:
            self._unpulled_count -= len(self._unpulled.pop(document))
            self._rewritten.discard(document)
        await self._record_pulled()

    async def _pull_overflow(self) -> None:
        while self._unpulled_count > MAX_PLACED:
            await self._pull(list(self._unpulled)[:PULL_SLICE])

    async def _pull_all(self) -> None:
        while self._unpulled:
            await self._pull(list(self._unpulled)[:PULL_SLICE])

    async def _pull_entries(self, entries: dict[_Document, list[Document]]) -> None:
        """One `$pullAll` per document (one rewrite however many entries), one bulk write per
        collection and slice. Entries are matched whole: FerretDB v1 compares them by equality."""
        if not entries:
            return
        first = next(iter(entries.values()))[0]
        self._faults.reached(FaultPoint.CRASH_BEFORE_PULL, first["action"])
        documents = list(entries)
        for start in range(0, len(documents), PULL_SLICE):
            updates: dict[str, list[UpdateOne]] = {}
            for collection, key in documents[start : start + PULL_SLICE]:
                updates.setdefault(collection, []).append(
                    UpdateOne({"_id": key}, {"$pullAll": {"outbox": entries[(collection, key)]}})
                )
            await asyncio.gather(
                *(self._collections[name].bulk_write(ops, ordered=False) for name, ops in updates.items())
            )

    async def _record_pulled(self) -> None:
        """Records that every entry up to the oldest one still placed is pulled."""
        through = min((entries[0][0] for entries in self._unpulled.values()), default=self._last + 1) - 1
        if through > self._pulled_through:
            await self._state.update_one(
                {"_id": PULLED_THROUGH}, {"$max": {"sequence": through}}, upsert=True
            )
            self._pulled_through = through
