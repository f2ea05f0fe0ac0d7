"""The event trail in memory: an event is appended, numbered 1, 2, 3..., in the same step as the
change it records (nothing runs in between), so it is in the trail as soon as the change is."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from modelreg_metadata.audit.events import Event, EventScope


class MemoryEventLog:
    def __init__(self) -> None:
        self._events: list[Event] = []  # sequence n is at index n - 1
        self._grown = asyncio.Event()
        self._closed = False

    def append(self, event: Event) -> Event:
        """Places the event of a change committed just now, with the next sequence number."""
        placed = replace(event, sequence=len(self._events) + 1)
        self._events.append(placed)
        self._grown.set()
        self._grown = asyncio.Event()
        return placed

    async def get(self, sequence: int) -> Event | None:
        return self._events[sequence - 1] if 0 < sequence <= len(self._events) else None

    async def latest_sequence(self) -> int:
        return len(self._events)

    async def settle(self) -> None:
        """Every change's event is placed with it: nothing to wait for."""

    async def read_after(self, sequence: int, limit: int, *, probe: bool) -> list[Event]:
        return self._events[max(sequence, 0) : max(sequence, 0) + limit]

    async def search(
        self,
        scope: EventScope,
        after_sequence: int,
        limit: int,
        *,
        before_sequence: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        end = len(self._events) if before_sequence <= 0 else min(before_sequence - 1, len(self._events))
        window = self._events[max(after_sequence, 0) : end]
        found: list[Event] = []
        for event in reversed(window) if newest_first else window:
            if len(found) == limit:
                break
            if scope.matches(event):
                found.append(event)
        return found

    def growth(self) -> asyncio.Event:
        return self._grown

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wakes every watcher for good (the service is stopping)."""
        self._closed = True
        self._grown.set()
