"""Transfer progress on stderr: a redrawn bar on a terminal, plain log lines otherwise.

Log lines are what a Kubernetes init container or a CI job shows: one line when the transfer
starts, one per file, one every `interval` seconds with bytes, rate and ETA, and one at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from modelreg.cli.output import human_bytes, human_duration
from modelreg.progress import Direction, Outcome

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1
_RATE_WINDOW_SECONDS = 3.0

_VERBS = {
    Outcome.HASHED: "hashed",
    Outcome.UPLOADED: "uploaded",
    Outcome.RESUMED: "uploaded, resuming an interrupted upload",
    Outcome.DEDUPLICATED: "already stored in the registry, nothing sent",
    Outcome.ALREADY_PRESENT: "already in the version",
    Outcome.DOWNLOADED: "downloaded and verified",
    Outcome.FROM_CACHE: "verified from the local cache",
    Outcome.IN_PLACE: "already in the destination, verified",
}


_GERUNDS = {Direction.HASH: "hashing", Direction.UPLOAD: "uploading", Direction.DOWNLOAD: "downloading"}
_ARROWS = {Direction.HASH: "#", Direction.UPLOAD: "↑", Direction.DOWNLOAD: "↓"}


class _Meter:
    """Bytes done, and the rate over the last few seconds (an average since the start lies
    after a stall or a resumed prefix)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.total = 0
        self.done = 0
        self.files = 0
        self.files_done = 0
        self.started = clock()
        self._samples: list[tuple[float, int]] = [(self.started, 0)]

    def begin(self, files: int, total: int) -> None:
        self.files, self.total, self.done, self.files_done = files, total, 0, 0
        self.started = self.clock()
        self._samples = [(self.started, 0)]

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = self.clock()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[1][0] > _RATE_WINDOW_SECONDS:
            self._samples.pop(0)

    @property
    def rate(self) -> float:
        (first_time, first_done), (last_time, last_done) = self._samples[0], self._samples[-1]
        elapsed = last_time - first_time
        # Never negative: a download that starts a file over takes its bytes back (`advance`
        # with a negative count); the rate shows 0 until the new bytes pass the old ones.
        return max(0.0, (last_done - first_done) / elapsed) if elapsed > 0 else 0.0

    @property
    def eta(self) -> str:
        rate = self.rate
        return human_duration((self.total - self.done) / rate) if rate > 0 else "?"

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


class LogProgress:
    """Plain lines, for logs: no carriage returns, no escape codes."""

    def __init__(
        self, stream: TextIO, *, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ):
        self._stream = stream
        self._interval = interval
        self._meter = _Meter(clock)
        self._clock = clock
        self._last_report = 0.0
        self._direction = Direction.DOWNLOAD

    def _write(self, text: str) -> None:
        self._stream.write(f"modelreg: {text}\n")
        self._stream.flush()

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        self._direction = direction
        self._meter.begin(files, total_bytes)
        self._last_report = self._clock()
        self._write(
            f"{_GERUNDS[direction]} {files} file{'s' if files != 1 else ''} ({human_bytes(total_bytes)})"
        )

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self._meter.advance(nbytes)
        now = self._clock()
        if now - self._last_report >= self._interval:
            self._last_report = now
            meter = self._meter
            self._write(
                f"{human_bytes(meter.done)} / {human_bytes(meter.total)} ({meter.percent:.0f}%), "
                f"{human_bytes(meter.rate)}/s, ETA {meter.eta}"
            )

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        meter = self._meter
        meter.files_done += 1
        if outcome is Outcome.HASHED:  # one line per file is for transfers; hashing gets a summary
            return
        count = f"[{meter.files_done}/{meter.files}]"
        self._write(f"{count} {path} ({human_bytes(size_bytes)}): {_VERBS[outcome]}")

    def retrying(self, path: str, reason: str, delay: float) -> None:
        self._write(f"{path}: {reason}; retrying in {delay:.1f}s")

    def end(self) -> None:
        meter = self._meter
        elapsed = max(self._clock() - meter.started, 1e-9)
        self._write(
            f"{meter.files_done}/{meter.files} files, {human_bytes(meter.done)} in {elapsed:.1f}s "
            f"({human_bytes(meter.done / elapsed)}/s)"
        )


class TerminalProgress:
    """One line redrawn in place: files, bytes, a bar, rate and ETA."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic):
        self._stream = stream
        self._meter = _Meter(clock)
        self._clock = clock
        self._last_draw = 0.0
        self._arrow = "↓"
        self._width = 0

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        self._arrow = _ARROWS[direction]
        self._meter.begin(files, total_bytes)
        self._draw(force=True)

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self._meter.advance(nbytes)
        self._draw()

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        self._meter.files_done += 1
        self._draw(force=True)

    def retrying(self, path: str, reason: str, delay: float) -> None:
        self._clear()
        self._stream.write(f"modelreg: {path}: {reason}; retrying in {delay:.1f}s\n")
        self._draw(force=True)

    def end(self) -> None:
        self._draw(force=True)
        self._stream.write("\n")
        self._stream.flush()

    def _clear(self) -> None:
        self._stream.write("\r" + " " * self._width + "\r")

    def _draw(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_draw < _REDRAW_SECONDS:
            return
        self._last_draw = now
        meter = self._meter
        filled = round(_BAR_WIDTH * meter.percent / 100)
        line = (
            f"{self._arrow} {meter.files_done}/{meter.files} files  "
            f"{human_bytes(meter.done)} / {human_bytes(meter.total)}  "
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {meter.percent:3.0f}%  "
            f"{human_bytes(meter.rate)}/s  ETA {meter.eta}"
        )
        padding = max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write("\r" + line + " " * padding)
        self._stream.flush()
