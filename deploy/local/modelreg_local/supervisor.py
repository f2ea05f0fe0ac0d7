"""`make run` keeps the stack up: a child that dies is named and restarted, or everything stops.

The children are checked in start order, stores first: a service whose database died keeps
running (its calls answer UNAVAILABLE meanwhile) and reconnects once the store is back, so
restarting the store is the whole remedy. A child that dies again and again is not restarted
forever: after `max_restarts` deaths within `window` seconds, or a restart that keeps failing,
the supervisor gives up with a message that says which child and where its log is, and the
stack stops.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    """One supervised process, seen through what supervising it needs."""

    name: str
    pid: Callable[[], int | None]
    exit_code: Callable[[], int | None]
    restart: Callable[[], None]  # start again and wait until healthy; raises when it cannot
    log_path: Path
    deaths: deque[float] = field(default_factory=deque)


class GaveUp(RuntimeError):
    """A child could not be kept running: the stack must stop."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        report: Callable[[str], None],
        stop: threading.Event,
        max_restarts: int = 5,
        window: float = 300.0,
        first_backoff: float = 0.5,
        max_backoff: float = 10.0,
    ):
        self.children = list(children)
        self._report = report
        self._stop = stop
        self._max_restarts = max_restarts
        self._window = window
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff

    def check(self) -> None:
        """Restart every child that has died since the last check; GaveUp when one cannot be kept."""
        for child in self.children:
            code = child.exit_code()
            if code is not None and not self._stop.is_set():
                self._revive(child, code)

    def _revive(self, child: Child, code: int) -> None:
        now = time.monotonic()
        child.deaths.append(now)
        while child.deaths and child.deaths[0] < now - self._window:
            child.deaths.popleft()
        self._report(f"modelreg-local: {child.name} (pid {child.pid()}) died: {describe_exit(code)}")
        if len(child.deaths) > self._max_restarts:
            raise GaveUp(
                f"{child.name} died {len(child.deaths)} times within {self._window:.0f} s; giving up "
                f"(its log: {child.log_path})"
            )
        backoff = self._first_backoff * 2 ** (len(child.deaths) - 1)
        for attempt in range(1, self._max_restarts + 1):
            delay = min(backoff, self._max_backoff)
            self._report(f"modelreg-local: restarting {child.name} in {delay:g} s (attempt {attempt}) ...")
            if self._stop.wait(delay):
                return
            try:
                child.restart()
            except Exception as exc:
                self._report(f"modelreg-local: {child.name} did not come back: {exc}")
                backoff *= 2
                continue
            self._report(f"modelreg-local: {child.name} is running again (pid {child.pid()})")
            return
        raise GaveUp(
            f"{child.name} could not be restarted after {self._max_restarts} attempts; giving up "
            f"(its log: {child.log_path})"
        )
