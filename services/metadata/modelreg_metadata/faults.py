"""Fault injection: crash the metadata service at a chosen point, for crash-consistency tests.

`MODELREG_FAULT_INJECTION=<point>[@<ACTION>]` makes the process `os._exit(137)` (what a SIGKILL
looks like: no cleanup, no draining) when it reaches `<point>`, optionally only for events of
`<ACTION>` (e.g. `crash-after-commit@ALIAS_MOVED`). Points:

- `crash-after-commit`: right after a change and its outbox entry were written to the resource's
  document, before the relay has copied the entry into the event trail;
- `crash-after-event-insert`: right after the relay inserted the event into the trail, before it
  removed the entry from the document's outbox;
- `crash-before-pull`: when the relay of the one writing process (FerretDB) is about to pull
  placed entries from their documents, which it defers (audit/outbox.py): every entry placed by
  then is still in its document.

Never set in production. tests/integration/test_audit_crash.py and test_audit_relay.py use it; a
later fault-injection suite can add points here (each is one `reached(...)` call at the spot it
names).
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass

CRASH_EXIT_CODE = 137


class FaultPoint(enum.Enum):
    CRASH_AFTER_COMMIT = "crash-after-commit"
    CRASH_AFTER_EVENT_INSERT = "crash-after-event-insert"
    CRASH_BEFORE_PULL = "crash-before-pull"


@dataclass(frozen=True)
class Faults:
    point: FaultPoint | None = None
    action: str = ""

    @classmethod
    def parse(cls, text: str) -> Faults:
        """`""` (no fault), `<point>` or `<point>@<ACTION>`; ValueError names the valid points."""
        if not text:
            return cls()
        point, _, action = text.partition("@")
        try:
            return cls(FaultPoint(point), action)
        except ValueError:
            valid = ", ".join(p.value for p in FaultPoint)
            raise ValueError(f"unknown fault point {point!r}; one of {valid}") from None

    def reached(self, point: FaultPoint, action: str) -> None:
        if self.point is point and (not self.action or self.action == action):
            sys.stderr.write(
                f'{{"event": "fault injected", "point": "{point.value}", "action": "{action}"}}\n'
            )
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)
