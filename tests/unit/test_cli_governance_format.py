"""How the CLI reads governance arguments and writes comparisons and events, without a server."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from google.protobuf import struct_pb2
from modelreg.cli.aliases import not_worse
from modelreg.cli.compare import cell
from modelreg.cli.events import moment, summary
from modelregistry.v1 import event_pb2


def struct(**fields: Any) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(fields)
    return value


def test_not_worse_takes_a_metric_and_a_direction() -> None:
    assert not_worse("auc:max") == ("auc", "max")
    assert not_worse("latency:p99:MIN") == ("latency:p99", "min")  # the last colon separates
    for bad in ("auc", "auc:", ":max", "auc:up"):
        with pytest.raises(argparse.ArgumentTypeError):
            not_worse(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (8.0, "8"),
        (0.1, "0.1"),
        (1e-07, "1e-07"),
        (True, "true"),
        ("adam", "adam"),
        ([64, 32.0], "[64,32.0]"),
    ],
)
def test_compared_values_read_naturally(value: object, text: str) -> None:
    assert cell(value) == text


def test_event_summaries_say_what_changed() -> None:
    moved = event_pb2.Event(
        action="ALIAS_MOVED", before=struct(version_number=1.0), after=struct(version_number=2.0)
    )
    assert summary(moved) == "version_number 1 -> 2"
    created = event_pb2.Event(action="ALIAS_CREATED", after=struct(version_number=3.0, update_actor="a"))
    assert summary(created) == "-> 3"
    files = event_pb2.Event(
        action="MODEL_VERSION_FILE_ADDED",
        before=struct(files=[], manifest_digest="x"),
        after=struct(files=[{"path": "w.bin", "sha256": "ab"}], manifest_digest="y"),
    )
    assert summary(files) == "files +w.bin"
    metrics = event_pb2.Event(
        action="MODEL_VERSION_UPDATED",
        before=struct(metrics={"auc": 0.9}, etag="1"),
        after=struct(metrics={"auc": 0.95, "f1": 0.8}, etag="2"),
    )
    assert summary(metrics) == "metrics.auc 0.9 -> 0.95; metrics.f1 - -> 0.8"
    review = event_pb2.Event(
        action="MODEL_VERSION_APPROVED",
        before=struct(review_state="PENDING"),
        after=struct(review_state="APPROVED", reviews=[{"decision": "APPROVED", "comment": "ok"}]),
    )
    assert summary(review) == 'review approved "ok"; review_state PENDING -> APPROVED'


def test_times_need_a_zone() -> None:
    assert moment("2026-11-26T12:00:00Z").utcoffset() is not None
    with pytest.raises(argparse.ArgumentTypeError, match="no time zone"):
        moment("2026-11-26T12:00:00")
