"""The background loops of every replica: expire upload sessions, collect garbage.

Each loop is safe to run on every replica at once (see `garbage`), so there is no leader to
elect; a failed round is logged and the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from modelreg_common.observability.metrics import count_database_error

from modelreg_artifacts.config import SweepSettings
from modelreg_artifacts.garbage import GarbageCollector

log = structlog.get_logger("modelreg.artifacts.sweeper")


async def _every(seconds: float, name: str, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except Exception as exc:
            count_database_error(exc)
            log.exception("sweep failed; retrying next round", sweep=name)


class Sweeper:
    def __init__(self, collector: GarbageCollector, settings: SweepSettings):
        self._collector = collector
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(
            asyncio.create_task(
                _every(
                    self._settings.session_sweep_interval_seconds, "sessions", self._collector.sweep_sessions
                )
            )
        )
        if self._settings.gc_interval_seconds > 0:
            self._tasks.append(
                asyncio.create_task(
                    _every(
                        self._settings.gc_interval_seconds,
                        "garbage",
                        lambda: self._collector.collect(dry_run=False),
                    )
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
