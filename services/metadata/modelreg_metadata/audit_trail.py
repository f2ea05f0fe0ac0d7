"""Reading the audit trail: which events a list or a watch wants (`EventScope`), and the reads
themselves (`AuditTrail`): list, watch, and a resource's state at a point in time rebuilt from
its events.

Apart from the registry because it only reads, and reads the event log rather than the stores:
events reach the log through the outbox relay (store/outbox.py), after the writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelreg_api.errors import InvalidArgument, NotFound, Unavailable
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from modelreg_common import paging

from modelreg_metadata import audit, domain
from modelreg_metadata.audit import Action, Event
from modelreg_metadata.domain import Alias, ModelVersion
from modelreg_metadata.store import EventLog
from modelreg_metadata.store.events import list_condition, scope_of

WATCH_POLL_SECONDS = 0.15  # how long a watcher waits for this process's relay before re-reading
WATCH_BATCH = 256
MAX_RESOURCE_CHARS = 512


@dataclass(frozen=True)
class EventScope:
    """Which events a list or a watch wants (every field optional)."""

    namespace: str = ""
    model_id: str = ""
    resource: str = ""
    actions: tuple[str, ...] = ()
    actor: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    # The namespaces the caller may read (sorted), or None for all: events elsewhere, and events
    # of no namespace (API tokens), are left out.
    visible_namespaces: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        *,
        namespace: NamespaceName | None = None,
        model: ModelName | None = None,
        resource: str = "",
        actions: Sequence[str] = (),
        actor: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        visible_namespaces: frozenset[str] | None = None,
    ) -> EventScope:
        if model is not None and namespace is not None and model.namespace != namespace.namespace:
            raise InvalidArgument("model", f"{model} is not in {namespace}")
        known = {a.value for a in Action}
        for i, action in enumerate(actions):
            if action not in known:
                raise InvalidArgument(
                    f"actions[{i}]", f"unknown action {action!r}; one of {', '.join(sorted(known))}"
                )
        domain.check_text("resource", resource, MAX_RESOURCE_CHARS)
        domain.check_text("actor", actor, domain.MAX_TITLE_CHARS)
        if start_time is not None and end_time is not None and end_time <= start_time:
            raise InvalidArgument("end_time", "must be after start_time")
        return cls(
            namespace=model.namespace if model else namespace.namespace if namespace else "",
            model_id=model.model if model else "",
            resource=resource,
            actions=tuple(dict.fromkeys(actions)),
            actor=actor,
            start_time=start_time,
            end_time=end_time,
            visible_namespaces=None if visible_namespaces is None else tuple(sorted(visible_namespaces)),
        )

    def condition(self) -> dict[str, Any]:
        condition = list_condition(
            namespace=self.namespace,
            model_id=self.model_id,
            resource=self.resource,
            actions=list(self.actions),
            actor=self.actor,
            start_time=self.start_time,
            end_time=self.end_time,
        )
        visible = self.visible_namespaces
        if visible is not None and not self.namespace:
            condition["namespace"] = {"$in": list(visible)}
        elif visible is not None and self.namespace not in visible:
            condition["namespace"] = {"$in": []}  # a namespace the caller cannot read: nothing
        return condition

    def matches(self, event: Event) -> bool:
        namespace, model_id = scope_of(event.resource)
        return (
            (self.visible_namespaces is None or namespace in self.visible_namespaces)
            and (not self.namespace or namespace == self.namespace)
            and (not self.model_id or model_id == self.model_id)
            and (not self.resource or event.resource == self.resource)
            and (not self.actions or event.action in self.actions)
            and (not self.actor or event.actor == self.actor)
            and (self.start_time is None or event.time >= self.start_time)
            and (self.end_time is None or event.time < self.end_time)
        )


class AuditTrail:
    """Reading the event trail: list, watch, and the state of a resource at a point in time."""

    def __init__(self, events: EventLog):
        self._events = events

    async def list_events(
        self, scope: EventScope, *, after_sequence: int, page_size: int, page_token: str
    ) -> tuple[list[Event], str]:
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        limit = paging.page_size(page_size)
        query = f"events:{scope!r}:{after_sequence}"
        key = paging.decode_token(page_token, query)
        if key is not None:
            if len(key) != 1 or not isinstance(key[0], int):
                raise InvalidArgument("page_token", "is not a token returned by this method")
            after_sequence = max(after_sequence, key[0])
        await self._events.settle()
        found = await self._events.search(scope.condition(), after_sequence, limit + 1)
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
        condition = list_condition(resource=resource, actions=list(actions), end_time=None)
        condition["time"] = {"$lte": moment}
        found: list[Event] = []
        after = 0
        while True:
            page = await self._events.search(condition, after, paging.MAX_PAGE_SIZE)
            found += page
            if len(page) < paging.MAX_PAGE_SIZE:
                return found
            after = page[-1].sequence

    async def version_at(self, name: ModelVersionName, moment: datetime) -> tuple[ModelVersion, Event]:
        history = await self._history(str(name), moment)
        state: audit.Json | None = None
        for event in history:
            if event.action == Action.MODEL_VERSION_CREATED:
                state = dict(event.after)
            elif event.action == Action.MODEL_VERSION_PURGED:
                state = None
            elif state is not None:
                state = audit.apply(state, event)
        if state is None:
            purged = bool(history) and history[-1].action == Action.MODEL_VERSION_PURGED
            raise NotFound(
                f"model version {name} {'had been purged' if purged else 'did not exist'} "
                f"at {moment.isoformat()}",
                reason="NOT_FOUND_AT_TIME",
            )
        return audit.version_from_state(name, state, history[-1].time), history[-1]

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
