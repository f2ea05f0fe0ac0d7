"""The chart data of metric histories (docs/web.md, "Speed"): complete and exact where the
history fits the chart, min/max-decimated to the chart's width where it does not (every kept
point a logged one, every bucket's lowest and highest point kept), and revalidated by an ETag
that changes when a point is logged."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from modelreg_local.stack import LocalStack
from modelreg_web import decimation
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2

from tests.integration.credentials import ready_credential_for
from tests.support import ALICE, bearer, unique
from tests.web.conftest import SignedIn
from tests.web.sample import DIP_STEP, HISTORY_STEPS, SHORT_STEPS, SPIKE_STEP, Histories

pytestmark = pytest.mark.integration

COMPARED = "&".join(f"v={n}" for n in range(1, 11))


def pairs(series: dict[str, Any]) -> list[tuple[int, float]]:
    assert len(series["steps"]) == len(series["values"])
    return list(zip(series["steps"], series["values"], strict=True))


def assert_min_max_per_bucket(series: dict[str, Any], logged: list[float]) -> None:
    """Every kept point is logged as it is; each bucket of steps keeps its lowest and highest
    point, and the history's first and last."""
    kept = pairs(series)
    assert all(logged[step] == value for step, value in kept)
    assert [s for s, _ in kept] == sorted({s for s, _ in kept})
    assert len(kept) <= 2 * decimation.BUCKETS + 2
    assert kept[0] == (0, logged[0])
    assert kept[-1] == (len(logged) - 1, logged[-1])
    last = len(logged) - 1
    buckets: dict[int, list[int]] = {}
    for step in range(len(logged)):
        buckets.setdefault(min(decimation.BUCKETS - 1, step * decimation.BUCKETS // last), []).append(step)
    kept_values = dict(kept)
    for steps in buckets.values():
        values = [logged[s] for s in steps]
        in_bucket = [kept_values[s] for s in steps if s in kept_values]
        assert min(values) in in_bucket
        assert max(values) in in_bucket


def test_a_long_history_keeps_every_peak_and_dip(signed_in: SignedIn, histories: Histories) -> None:
    response = signed_in().get(f"{histories.path}/v/1/history?metric=loss")
    assert response.status_code == 200, response.text[:500]
    chart = response.json()
    assert chart["title"] == "loss"
    assert chart["x"] == "step"
    (series,) = chart["series"]
    assert series["name"] == "loss"
    assert series["logged"] == HISTORY_STEPS
    assert series["decimated"] is True
    logged = histories.logged[1]
    assert_min_max_per_bucket(series, logged)
    kept = dict(pairs(series))
    assert kept[SPIKE_STEP] == 9.5
    assert kept[DIP_STEP] == -4.25


def test_a_history_that_fits_the_chart_is_exact_and_complete(
    signed_in: SignedIn, histories: Histories
) -> None:
    chart = signed_in().get(f"{histories.path}/v/11/history?metric=loss").json()
    (series,) = chart["series"]
    assert series["logged"] == SHORT_STEPS
    assert series["decimated"] is False
    assert series["steps"] == list(range(SHORT_STEPS))
    assert series["values"] == histories.logged[11]


def test_compare_history_of_ten_versions(signed_in: SignedIn, histories: Histories) -> None:
    response = signed_in().get(f"{histories.path}/compare/history?{COMPARED}&metric=loss")
    assert response.status_code == 200, response.text[:500]
    series = response.json()["series"]
    assert [s["name"] for s in series] == [f"v{n}" for n in range(1, 11)]
    for number, one in enumerate(series, start=1):
        assert one["logged"] == HISTORY_STEPS
        assert_min_max_per_bucket(one, histories.logged[number])
    # Two flat arrays per series, no objects: about 10 x 2,000 numbers.
    assert len(response.content) < 400_000


def test_chart_data_revalidates_until_a_point_is_logged(
    signed_in: SignedIn, histories: Histories, stack: LocalStack
) -> None:
    browser = signed_in()
    one = f"{histories.path}/v/11/history?metric=loss"
    several = f"{histories.path}/compare/history?v=11&v=2&metric=loss"
    first, compared = browser.get(one), browser.get(several)
    for response in (first, compared):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-cache"
        assert response.headers["etag"].startswith('"')
    assert first.headers["etag"] != compared.headers["etag"]
    for path, response in ((one, first), (several, compared)):
        again = browser.get(path, follow=False, headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == response.headers["etag"]
    # Another metric of the same version is another answer.
    other = browser.get(f"{histories.path}/v/11/history?metric=accuracy")
    assert other.headers["etag"] != first.headers["etag"]

    token = ready_credential_for(stack.addresses.artifacts, ALICE)
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        metadata_service_pb2_grpc.MetadataServiceStub(channel).LogMetrics(
            md.LogMetricsRequest(
                model_version=histories.version_name(11),
                points=[model_pb2.MetricPoint(key="loss", value=0.125, step=SHORT_STEPS)],
                request_id=unique("log"),
            ),
            metadata=bearer(token),
            timeout=30,
        )
    histories.logged[11].append(0.125)
    for path, response in ((one, first), (several, compared)):
        changed = browser.get(path, follow=False, headers={"if-none-match": response.headers["etag"]})
        assert changed.status_code == 200
        assert changed.headers["etag"] != response.headers["etag"]
        series = changed.json()["series"][0]
        assert series["logged"] == SHORT_STEPS + 1
        assert pairs(series)[-1] == (SHORT_STEPS, 0.125)


def test_decimation_keeps_extremes_and_leaves_the_rest_whole() -> None:
    steps = list(range(10_000))
    values = [math.sin(s / 50) for s in steps]
    values[7] = math.nan  # not finite: kept as a gap (None), never an extreme
    values[4321] = 100.0
    drawn = decimation.series(steps, values, buckets=100)
    assert drawn.decimated
    assert drawn.logged == 10_000
    assert len(drawn.steps) <= 202
    kept = dict(zip(drawn.steps, drawn.values, strict=True))
    assert kept[4321] == 100.0
    assert kept[0] == values[0]
    assert kept[9999] == values[9999]
    assert 7 not in kept
    assert all(values[s] == v for s, v in kept.items())
    # Short, out of order, or all at one step: as logged (non-finite values as None).
    assert decimation.series([0, 1, 2], [1.0, math.inf, 3.0]).values == [1.0, None, 3.0]
    unordered = decimation.series([*range(5000, 0, -1)], [1.0] * 5000)
    assert not unordered.decimated
    assert unordered.steps[0] == 5000
    flat = decimation.series([3] * 5000, [1.0] * 5000)
    assert not flat.decimated
