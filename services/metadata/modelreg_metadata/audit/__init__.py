"""The audit trail: every change of every resource appends exactly one event, and the trail is
append-only, gap-free (sequence 1..n) and readable at any point in time (docs/governance.md).

- events.py: the `Event`, its `Action`, an `EventScope` (which events a reader wants), and how a
  change becomes an event (the before/after diff);
- changes.py: the event makers each write of the registry hands its store;
- outbox_entry.py: the event as a write carries it in its document's `outbox`;
- outbox.py: the relay that moves outbox entries into the trail, exactly once and without gaps;
- mongo_log.py: the trail on MongoDB (the `events` collection) and the in-process feed watchers
  wait on;
- event_index.py: on FerretDB, the one process's in-memory index of the trail that searches use;
- replay.py: a resource's state rebuilt from its events;
- trail.py: reading the trail (ListEvents, WatchEvents, state at a point in time).

Dependencies point one way. events, replay, outbox_entry and changes are pure (no database): the
stores import them. outbox and mongo_log are the MongoDB side; they use the stores' document
helpers (store/documents.py) and are wired up by store/database.py. trail reads any `EventLog`
(store/__init__.py): MongoDB's here, or the in-memory one (memory/events.py).
"""
