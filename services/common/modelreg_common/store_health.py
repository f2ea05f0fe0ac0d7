"""The gRPC health of a service follows its stores: NOT_SERVING while one cannot be reached.

A load balancer or orchestrator reads the standard health service to decide where calls go; a
replica whose database is gone would only answer UNAVAILABLE, so it says so up front. Each store
has a probe (a database `ping`, an S3 bucket check) run every `interval` seconds with a short
timeout of its own. One failed probe is not an outage (a slow moment, a restart of the store's
proxy): `failures_to_mark` failures in a row are. A call that met an outage (the interceptor's
`on_store_outage`) counts as a failure and wakes the probe at once, so health turns within about
one interval after the first failed call. The first probe that succeeds again turns it back.

Graceful shutdown wins: the health servicer ignores every change once it is draining
(`enter_graceful_shutdown`), and the monitor is stopped before the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from grpc_health.v1 import health_pb2

from modelreg_common.observability.metrics import STORE_UP, declare_store

log = structlog.get_logger("modelreg.health")

# How much longer than its own bound a probe may take before the monitor cancels it.
_CANCEL_MARGIN_SECONDS = 5.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class StoreProbe:
    """One store's liveness check: `check` returns when the store answers, raises otherwise."""

    name: str  # "database", "object storage": what the log says is down
    check: Callable[[], Awaitable[None]]

    @property
    def metric_label(self) -> str:
        """The `store` label of its metrics: "database", "object_storage"."""
        return self.name.replace(" ", "_")


class HealthSetter(Protocol):
    """What the monitor drives: the health servicer's `set` (grpc_health's aio HealthServicer)."""

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None: ...


class StoreHealth:
    """Probes the stores in the background and sets the health of `services` ("" included)."""

    def __init__(
        self,
        probes: Sequence[StoreProbe],
        *,
        interval: float = 1.0,
        probe_timeout: float = 1.0,
        failures_to_mark: int = 2,
    ):
        self._probes = list(probes)
        self._up = [STORE_UP.labels(probe.metric_label) for probe in self._probes]
        for probe in self._probes:
            declare_store(probe.metric_label)
        self._interval = interval
        self._probe_timeout = probe_timeout
        self._failures_to_mark = failures_to_mark
        self._failures = 0
        self.serving = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._set: Callable[[bool], Awaitable[None]] | None = None

    def outage_seen(self) -> None:
        """A call met a store outage: count it and probe now (called from the interceptor)."""
        self._failures += 1
        self._wake.set()

    def start(self, health: HealthSetter, services: Sequence[str]) -> None:
        names = list(services)

        async def set_all(serving: bool) -> None:
            for name in names:
                await health.set(name, SERVING if serving else NOT_SERVING)

        self._set = set_all
        if self._probes:
            self._task = asyncio.create_task(self._run(), name="store-health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.probe_once()
            except Exception:  # the monitor must outlive anything a probe does
                log.exception("store health probe failed unexpectedly")

    async def probe_once(self) -> None:
        down = await self._unreachable()
        if down:
            self._failures += 1
            if self.serving and self._failures >= self._failures_to_mark:
                log.warning("a store is unreachable: health NOT_SERVING", stores=down)
                await self._mark(serving=False)
        else:
            self._failures = 0
            if not self.serving:
                log.info("the stores answer again: health SERVING")
                await self._mark(serving=True)

    async def _unreachable(self) -> list[str]:
        results = await asyncio.gather(*(self._check(probe) for probe in self._probes))
        for up, ok in zip(self._up, results, strict=True):
            up.set(1 if ok else 0)
        return [probe.name for probe, ok in zip(self._probes, results, strict=True) if not ok]

    async def _check(self, probe: StoreProbe) -> bool:
        try:
            # The probe bounds itself (the database's ping runs under pymongo.timeout); cancelling
            # a driver operation half-way, e.g. while it opens a connection, is what must not
            # happen every second during an outage, so the cancel here is only a last resort.
            await asyncio.wait_for(probe.check(), self._probe_timeout + _CANCEL_MARGIN_SECONDS)
        except Exception as exc:  # any failure (a timeout included) means "not reachable now"
            log.debug("store probe failed", store=probe.name, error=type(exc).__name__)
            return False
        return True

    async def _mark(self, *, serving: bool) -> None:
        self.serving = serving
        if self._set is not None:
            await self._set(serving)
