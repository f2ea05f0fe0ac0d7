"""An outbox entry: the event as a write carries it inside its document until the relay places it
in the trail (audit/outbox.py).

Pure: the stores build an entry with `outbox_entry` and push it in the same single-document write
as the change; the relay reads it back with `event_from_json`. The event is kept as one JSON text
because `before`/`after` hold user keys (`.`, `$`) that BSON field names cannot.
"""

from __future__ import annotations

import json
from datetime import datetime

from modelreg_metadata.audit.events import Event
from modelreg_metadata.store.documents import Document


def outbox_entry(event: Event) -> Document:
    """What a write pushes into its document's `outbox` (`time` serves the sweep's index)."""
    return {"id": event.id, "time": event.time, "action": event.action, "event": event_json(event)}


def event_json(event: Event) -> str:
    """The event as the outbox keeps it: one JSON text (user keys may hold `.` or `$`)."""
    return json.dumps(
        {
            "id": event.id,
            "time": event.time.isoformat(),
            "actor": event.actor,
            "request_id": event.request_id,
            "resource": event.resource,
            "action": event.action,
            "before": event.before,
            "after": event.after,
            "authentication": event.authentication,
            "via": event.via,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def event_from_json(text: str, sequence: int = 0) -> Event:
    data = json.loads(text)
    return Event(
        id=data["id"],
        time=datetime.fromisoformat(data["time"]),
        actor=data["actor"],
        request_id=data["request_id"],
        resource=data["resource"],
        action=data["action"],
        before=data["before"],
        after=data["after"],
        sequence=sequence,
        authentication=data.get("authentication", ""),
        via=data.get("via", ""),
    )
