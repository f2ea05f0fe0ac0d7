"""The audit event every write of the registry carries besides its data: the event makers the use
cases (registry/) hand their store. (The other thing a create carries, its request key, is
registry/idempotency.py.)

The store makes the event inside the write, from the resource before and after, and commits it
with the change (audit/outbox.py); so an event maker takes both, and may choose the action by them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from modelreg_metadata.audit import events
from modelreg_metadata.audit.events import Action, Event
from modelreg_metadata.clock import now
from modelreg_metadata.domain import Alias, ModelVersion
from modelreg_metadata.store import EventFor

log = structlog.get_logger("modelreg.metadata.changes")


def event(action: Action | Callable[[Any, Any], Action]) -> EventFor:
    """The event maker of one write: `action` may depend on the resource before and after."""

    def make(before: Any, after: Any) -> Event:
        chosen = action(before, after) if callable(action) else action
        resource = (after if after is not None else before).name
        event = events.new_event(chosen, resource, before, after, now())
        log.debug("change", action=event.action, resource=event.resource, fields=sorted(event.after))
        return event

    return make


def purge_event(before: ModelVersion, after: None) -> Event:
    event = events.purge_event(before.name, now())
    log.debug("change", action=event.action, resource=event.resource, fields=sorted(event.after))
    return event


def alias_action(before: Alias | None, after: Alias | None) -> Action:
    if after is None:
        return Action.ALIAS_DELETED
    return Action.ALIAS_CREATED if before is None else Action.ALIAS_MOVED
