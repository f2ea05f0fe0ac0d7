"""Purging versions that stayed soft-deleted longer than a retention period (off by default).

`MODELREG_PURGE_DELETED_AFTER_DAYS` > 0 turns it on. Each round purges the versions deleted
before the cutoff through the Registry, as any caller would (the same checks, the same event),
acting as `system:retention` so that the trail says who purged them; it also finishes purges a
crash interrupted. A version undeleted meanwhile is refused and skipped, and so is a version of a
deleted model. Several processes (MongoDB) may run rounds at once: a version one of them purged
is NOT_FOUND to the others, and skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import structlog
from modelreg_common.context import bind_call
from modelreg_common.identity.caller import Caller

from modelreg_metadata.clock import now
from modelreg_metadata.registry import Registry

log = structlog.get_logger("modelreg.metadata.retention")

# The registry acting on its own, by its configured retention: how the trail names it.
RETENTION = Caller("system:retention", authentication="system")
MIN_ROUND_SECONDS = 1.0
MAX_ROUND_SECONDS = 3600.0


class DeletedVersionRetention:
    def __init__(self, registry: Registry, keep_for: timedelta):
        self._registry = registry
        self._keep_for = keep_for
        # A version goes within a tenth of the period after it expired, and rounds stay rare: on
        # FerretDB each one reads the whole version collection.
        seconds = keep_for.total_seconds() / 10
        self._round_seconds = min(MAX_ROUND_SECONDS, max(MIN_ROUND_SECONDS, seconds))
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deleted-version-retention")

    async def stop(self) -> None:
        """Lets the purge in progress finish (a cancelled one would leave its metric history for
        the next round to delete), then stops."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not await self._stopped_within(self._round_seconds):
            try:
                await self.purge_expired()
            except Exception:
                log.exception("purging expired deleted versions failed; retrying next round")

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def purge_expired(self) -> int:
        # This task's context only: each round is one "call" of the retention actor.
        bind_call(uuid.uuid4().hex, RETENTION)
        purged = await self._registry.versions.purge_deleted_before(now() - self._keep_for, self._stopping)
        if purged:
            log.info("purged versions deleted longer than the retention period", versions=purged)
        return purged
