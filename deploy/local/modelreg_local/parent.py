"""Stopping when `make run` is told to stop: GNU make does not pass SIGINT on to its recipe.

`kill -INT <make>` (what a supervisor or a script sends for "interrupt") makes GNU make set
SIGINT back to its default action and wait for its children to end before re-raising it on
itself; the children get nothing and make waits forever. (SIGTERM it does pass on; Ctrl-C in a
terminal reaches the whole foreground process group, us included.) What the kernel shows of make
meanwhile is that it no longer catches SIGINT (/proc/<pid>/status, SigCgt): when our parent is
make and that changes, make was interrupted, and we stop as if we had been. When make itself is
gone (SIGKILL), we stop too rather than run on unsupervised.

A make started with SIGINT ignored (a background job of a non-interactive shell) never reacts to
it, so nothing can be seen: such callers send SIGTERM (docs/local-stack.md).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _caught_signals(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        return None
    return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class MakeParent:
    """Watches the `make` this process runs under, if it does and make catches SIGINT."""

    def __init__(self) -> None:
        self.pid = os.getppid()
        caught = _caught_signals(self.pid) if _command_name(self.pid) in ("make", "gmake") else None
        self.watching = caught is not None and bool(caught & _SIGINT_BIT)

    def stopped(self) -> str | None:
        """Why to stop now (make was interrupted, or is gone), or None."""
        if not self.watching:
            return None
        if os.getppid() != self.pid:
            return "make exited"
        caught = _caught_signals(self.pid)
        if caught is None:
            return "make exited"
        if not caught & _SIGINT_BIT:
            return "make was interrupted (SIGINT)"
        return None
