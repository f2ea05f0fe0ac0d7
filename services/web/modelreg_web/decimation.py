"""Min/max decimation of metric histories for drawing.

A chart is at most about 1,000 px wide, so a line of 5,000 points puts five points in each
column of pixels; the browser gains nothing from them but bytes to parse and lines to lay out.
A history longer than `2 * BUCKETS` points is cut into `BUCKETS` equal ranges of steps and each
range keeps only its lowest and its highest point (in their original order), plus the first
and last point of the history. Every kept point is a logged point with its exact step and
value; every peak and every dip survives, so the drawn line covers exactly the pixels the full
line would (an average would shave off the spikes a reader looks for).

A history whose steps do not rise (logged out of order) is left whole: ranges of steps would
then not be ranges of the drawn line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

BUCKETS = 1000


@dataclass(frozen=True)
class Series:
    """A history ready for the chart: steps and values side by side (values not finite are
    None), and how many points were logged."""

    steps: list[int]
    values: list[float | None]
    logged: int

    @property
    def decimated(self) -> bool:
        return len(self.steps) < self.logged


def series(steps: Sequence[int], values: Sequence[float], buckets: int = BUCKETS) -> Series:
    """The history as logged when it has at most `2 * buckets` points, else its min/max per
    bucket of steps."""
    finite = [v if math.isfinite(v) else None for v in values]
    logged = len(steps)
    rising = all(a <= b for a, b in itertools.pairwise(steps))
    if logged <= 2 * buckets or not rising or steps[0] == steps[-1]:
        return Series(list(steps), finite, logged)
    first, span = steps[0], steps[-1] - steps[0]
    kept = {0, logged - 1}
    bucket, low, high = 0, -1, -1  # the current bucket and the indexes of its extremes
    low_value = high_value = 0.0
    for index, (step, value) in enumerate(zip(steps, finite, strict=True)):
        at = min(buckets - 1, (step - first) * buckets // span)
        if at != bucket:
            kept.update((low, high))
            bucket, low, high = at, -1, -1
        if value is None:
            continue
        if low < 0 or value < low_value:
            low, low_value = index, value
        if high < 0 or value > high_value:
            high, high_value = index, value
    kept.update((low, high))
    kept.discard(-1)
    order = sorted(kept)
    return Series([steps[i] for i in order], [finite[i] for i in order], logged)
