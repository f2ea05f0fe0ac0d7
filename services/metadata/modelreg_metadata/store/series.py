"""The documents of a metric's history (`metric_series`): up to 1000 points each, as packed
columns.

A document `{_id: "<version>|<bucket>|<metric>", n, v, s, t, labels?}` holds its points as three
little-endian binary columns, `v` (float64 values), `s` (int64 steps) and `t` (int64
milliseconds since the epoch, the precision of a BSON date; `NO_TIME` for none), and in `labels`
only the points that name a dataset or slice, as `{i: index, d: dataset, sl: slice}` (FerretDB
refuses nested arrays).

Why columns: reading is what a history is for (a chart of ten 5,000-point histories), and the
store pays per value it decodes. FerretDB decodes an array of 1000 small subdocuments in about
20 ms and a binary field in under 1 ms, so the packed form makes a history read cheap on the
local store as on MongoDB.

Appending rewrites the document's columns under the version's in-process lock (held by
`MongoVersionStore.log_metrics`) and, on MongoDB, with a compare-and-set on `n` (the points it
held when read), so two writers never lose each other's points. Appends keep what a
`$push` gave: new points go after the ones the document holds, so a retried LogMetrics (see
`MongoVersionStore.log_metrics`) appends again rather than overwriting.

Documents written before this layout hold `points: [{v, s, t, d, sl}, ...]`; they are read as
they are and appended to with `$push`, so no migration is needed.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary
from modelreg_api.errors import Aborted
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from modelreg_metadata.domain import MetricPoint

Document = dict[str, Any]

NO_TIME = -(2**63)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
APPEND_ATTEMPTS = 5
_SWAP = sys.byteorder != "little"


def _column(kind: str, raw: bytes) -> array[Any]:
    column = array(kind)
    column.frombytes(raw)
    if _SWAP:
        column.byteswap()
    return column


def _binary(column: array[Any]) -> Binary:
    if _SWAP:
        column = array(column.typecode, column)
        column.byteswap()
    return Binary(column.tobytes())


def _millis(moment: datetime | None) -> int:
    if moment is None:
        return NO_TIME
    return ((moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - EPOCH) // MILLISECOND


def points_of(doc: Document, metric: str) -> list[MetricPoint]:
    """Every point the document holds, in the order they were appended."""
    if "points" in doc:  # the layout before packed columns
        return [
            MetricPoint(
                key=metric,
                value=row["v"],
                step=row.get("s", 0),
                time=row.get("t"),
                dataset=row.get("d", ""),
                slice=row.get("sl", ""),
            )
            for row in doc["points"]
        ]
    values, steps, times = _column("d", doc["v"]), _column("q", doc["s"]), _column("q", doc["t"])
    labels = {label["i"]: (label.get("d", ""), label.get("sl", "")) for label in doc.get("labels", [])}
    return [
        MetricPoint(
            key=metric,
            value=value,
            step=step,
            time=None if millis == NO_TIME else EPOCH + millis * MILLISECOND,
            dataset=labels[index][0] if index in labels else "",
            slice=labels[index][1] if index in labels else "",
        )
        for index, (value, step, millis) in enumerate(zip(values, steps, times, strict=True))
    ]


def _columns(held: Document | None, points: Sequence[MetricPoint]) -> Document:
    count = held["n"] if held else 0
    values = _column("d", held["v"]) if held else array("d")
    steps = _column("q", held["s"]) if held else array("q")
    times = _column("q", held["t"]) if held else array("q")
    values.extend(p.value for p in points)
    steps.extend(p.step for p in points)
    times.extend(_millis(p.time) for p in points)
    labels = list(held.get("labels", [])) if held else []
    labels += [
        {"i": count + i, "d": p.dataset, "sl": p.slice} for i, p in enumerate(points) if p.dataset or p.slice
    ]
    columns: Document = {
        "n": count + len(points),
        "v": _binary(values),
        "s": _binary(steps),
        "t": _binary(times),
    }
    if labels:
        columns["labels"] = labels
    return columns


async def append(
    series: AsyncCollection[Document], document_id: str, points: Sequence[MetricPoint], *, atomic: bool
) -> None:
    """Appends `points` to the document (creating it), whatever its layout. Filters name `_id`
    alone unless `atomic` (MongoDB): FerretDB v1 scans the collection for anything more and
    does not apply updates atomically, so there the version's in-process lock is what holds."""
    for _ in range(APPEND_ATTEMPTS):
        held = await series.find_one({"_id": document_id})
        if held is not None and "points" in held:  # the layout before packed columns
            rows = [{"v": p.value, "s": p.step, "t": p.time, "d": p.dataset, "sl": p.slice} for p in points]
            await series.update_one({"_id": document_id}, {"$push": {"points": {"$each": rows}}})
            return
        columns = _columns(held, points)
        if held is None:
            try:
                await series.insert_one({"_id": document_id, **columns})
            except DuplicateKeyError:
                continue  # another writer created it first: append to theirs
            return
        condition = {"_id": document_id, "n": held["n"]} if atomic else {"_id": document_id}
        written = await series.update_one(condition, {"$set": columns})
        if written.matched_count:
            return
    raise Aborted(f"metric history {document_id[:120]!r} is being written concurrently; retry")
