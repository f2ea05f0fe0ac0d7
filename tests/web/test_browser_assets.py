"""The JavaScript a browser downloads from the web UI fits the issue's budget: 300 KB gzipped.

Every script ships with the service (its static directory, no CDN: the browser tour also checks
that pages fetch nothing from another origin); bench/web_bench.py reports the same numbers.
"""

from __future__ import annotations

from bench.web_bench import JS_BUDGET_BYTES, shipped_javascript


def test_shipped_javascript_fits_the_300_kb_gzipped_budget() -> None:
    shipped = shipped_javascript()
    assert shipped["files"], "the web service ships no JavaScript at all: is the static directory gone?"
    assert shipped["gzip_total_bytes"] <= JS_BUDGET_BYTES, shipped
