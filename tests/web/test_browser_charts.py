"""In a real headless Chromium: the compare page of ten versions with 5,000-step histories draws
every line and marks the moment with `performance.mark("modelreg:chart-drawn")`, which the UI
benchmark reads (bench/web_bench.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.chromium import new_context, open_tab, sign_in
from tests.support import ALICE, credential_for
from tests.web.sample import Histories

pytestmark = pytest.mark.integration

CHART_DRAWN = "modelreg:chart-drawn"
MARKED = f"() => performance.getEntriesByName({CHART_DRAWN!r}).length > 0"


async def test_compare_page_of_ten_histories_marks_the_chart_drawn(
    chromium: Browser, web_url: str, histories: Histories, screenshots: Path
) -> None:
    tab = await open_tab(await new_context(chromium, web_url), screenshots)
    try:
        await sign_in(tab.page, credential_for(ALICE, "admin", "-"))
        versions = "&".join(f"v={n}" for n in range(1, 11))
        await tab.page.goto(f"{histories.path}/compare?{versions}&metric=loss")
        await tab.page.wait_for_function(MARKED)
        figure = tab.page.get_by_test_id("chart-compare-chart")
        assert await figure.get_attribute("data-state") == "drawn"
        lines = figure.locator("polyline")
        assert await lines.count() == 10
        assert [await lines.nth(i).get_attribute("data-series") for i in range(10)] == [
            f"v{n}" for n in range(1, 11)
        ]
        # Each line has as many vertices as the chart data kept (min/max per bucket of steps).
        vertices = await lines.nth(0).evaluate("line => line.points.numberOfItems")
        assert 2 < vertices <= 2002
        drawn = await tab.page.evaluate(
            f"performance.getEntriesByName({CHART_DRAWN!r}).map(e => e.startTime)"
        )
        assert len(drawn) == 1
        assert drawn[0] > 0
        await tab.shoot("compare-ten-histories")
        assert tab.page_errors == []
    finally:
        await tab.page.context.close()
