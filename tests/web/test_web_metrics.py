"""The web UI's Prometheus metrics, scraped from its `/metrics` port after real page loads
(docs/observability.md, "Web UI"). The web service is this module's own, so every count is
exactly what these tests did.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from modelreg_local.stack import LocalStack, WebProcess

from tests.integration.scrape import Samples, scrape_now, series, value
from tests.support import ALICE, credential_for, unique
from tests.web.browser import Browser
from tests.web.conftest import WebFactory
from tests.web.sample import Sample, make_sample

pytestmark = pytest.mark.integration

MODEL_ROUTE = "/n/{ns}/m/{model}"
FILE_ROUTE = "/n/{ns}/m/{model}/v/{n}/files/{path:path}"
PATIENCE_SECONDS = 10.0


@pytest.fixture(scope="module")
def web(start_web: WebFactory) -> WebProcess:
    return start_web()


@pytest.fixture(scope="module")
def sample(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return make_sample(stack, tmp_path_factory.mktemp("web-metrics"), namespace="web-metrics")


@pytest.fixture
def browser(web: WebProcess) -> Iterator[Browser]:
    with Browser(web.url) as signed:
        assert signed.sign_in(credential_for(ALICE, "admin", "-")).status_code == 303
        yield signed


def until(web: WebProcess, name: str, wanted: float, **labels: str) -> Samples:
    """Scrape until the sample has the wanted value (a request is counted as its response
    ends, just after the client has it), or fail naming what it was."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        samples = scrape_now(web.metrics_url)
        found = value(samples, name, **labels)
        if found == wanted or time.monotonic() > deadline:
            assert found == wanted, (name, labels, found)
            return samples
        time.sleep(0.05)


def test_pages_are_counted_and_timed_by_route_template_and_code(
    web: WebProcess, browser: Browser, sample: Sample
) -> None:
    before = scrape_now(web.metrics_url)
    assert browser.get(sample.path).status_code == 200
    assert browser.get(f"/n/{sample.namespace}/m/{unique('gone')}").status_code == 404
    assert browser.get(f"/no/such/page/{unique('x')}").status_code == 404

    ok = {"route": MODEL_ROUTE, "method": "GET", "code": "200"}
    missing = {"route": MODEL_ROUTE, "method": "GET", "code": "404"}
    unmatched = {"route": "unmatched", "method": "GET", "code": "404"}
    count = "modelreg_http_requests_total"
    after = until(web, count, value(before, count, **unmatched) + 1, **unmatched)
    for labels in (ok, missing, unmatched):
        assert value(after, count, **labels) - value(before, count, **labels) == 1, labels
        histogram = "modelreg_http_request_duration_seconds"
        assert (
            value(after, f"{histogram}_count", **labels) - value(before, f"{histogram}_count", **labels) == 1
        )
        assert value(after, f"{histogram}_sum", **labels) > value(before, f"{histogram}_sum", **labels)
        assert value(after, f"{histogram}_bucket", le="+Inf", **labels) == value(after, count, **labels)
    # Bounded labels: templates only, never a path that was asked for.
    routes = {labels["route"] for labels in series(after, count)}
    assert all(route == "unmatched" or route.startswith("/") for route in routes), routes
    assert not any(sample.model_id in route or "gone" in route or "/no/" in route for route in routes), routes
    assert value(after, "modelreg_http_requests_in_flight") == 0
    # The page's calls to the metadata service, counted by the SDK channels' interceptor.
    assert any(
        labels["service"] == "modelregistry.v1.MetadataService" and labels["code"] == "NOT_FOUND"
        for labels in series(after, "modelreg_grpc_client_requests_total")
    ), series(after, "modelreg_grpc_client_requests_total")
    assert value(after, "process_resident_memory_bytes") > 0


def test_a_download_adds_its_bytes(web: WebProcess, browser: Browser, sample: Sample) -> None:
    name = "modelreg_web_download_bytes_total"
    before = scrape_now(web.metrics_url)
    response = browser.get(f"{sample.path}/v/1/files/model.bin")
    assert response.status_code == 200
    size = len(sample.files["model.bin"])
    assert len(response.content) == size
    after = until(web, name, value(before, name) + size)
    labels = {"route": FILE_ROUTE, "method": "GET", "code": "200"}
    count = "modelreg_http_requests_total"
    assert value(after, count, **labels) - value(before, count, **labels) == 1


def test_an_open_event_stream_shows_in_the_gauge_until_it_closes(web: WebProcess, browser: Browser) -> None:
    gauge = "modelreg_web_event_streams_open"
    assert value(scrape_now(web.metrics_url), gauge) == 0
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    opened = threading.Event()
    close = threading.Event()

    def follow() -> None:
        with (
            httpx.Client(base_url=web.url, timeout=httpx.Timeout(30, read=60)) as http,
            http.stream("GET", "/events/stream", headers={"cookie": cookie}) as response,
        ):
            assert response.status_code == 200
            lines = response.iter_lines()  # held: a dropped iterator closes the response
            assert next(lines) == "retry: 1000"  # the stream is open
            opened.set()
            close.wait(30)

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        assert opened.wait(15)
        during = until(web, gauge, 1)
        assert value(during, "modelreg_http_requests_in_flight") == 1
    finally:
        close.set()
        reader.join(30)
    until(web, gauge, 0)
    # Counted once, when it ended (as the browser left), like any response.
    closed = {"route": "/events/stream", "method": "GET", "code": "200"}
    after = until(web, "modelreg_http_requests_total", 1, **closed)
    assert value(after, "modelreg_http_requests_in_flight") == 0


def test_only_metrics_is_served_on_the_metrics_port(web: WebProcess) -> None:
    base = web.metrics_url.removesuffix("/metrics")
    for path in ("/", "/healthz", "/n/x", "/metrics/extra"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}{path}", timeout=5)  # noqa: S310 - our loopback URL
        refused.value.close()
        assert refused.value.code == 404, path
    # and the web UI's own port does not serve the metrics
    assert httpx.get(f"{web.url}/metrics", timeout=10).status_code == 404


def test_a_metrics_port_in_use_stops_the_start(web: WebProcess, start_web: WebFactory) -> None:
    taken = start_web(wait=False, MODELREG_METRICS_ADDR=web.metrics_address)
    assert taken.wait_exited(30) == 1
    assert f"cannot serve metrics on {web.metrics_address}" in taken.log_tail()


def test_metrics_off_serves_none(start_web: WebFactory) -> None:
    quiet = start_web(MODELREG_METRICS_ADDR="off")
    assert "metrics off" in quiet.log_tail()
    assert httpx.get(f"{quiet.url}/readyz", timeout=10).status_code == 200


def test_with_tracing_on_a_page_is_a_server_span_over_its_calls(
    start_web: WebFactory, sample: Sample
) -> None:
    traced = start_web(OTEL_TRACES_EXPORTER="console", OTEL_BSP_SCHEDULE_DELAY="100")
    with Browser(traced.url) as browser:
        assert browser.sign_in(credential_for(ALICE, "admin", "-")).status_code == 303
        assert browser.get(sample.path).status_code == 200
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        spans = _console_spans(traced.log_path.read_text(errors="replace"))
        pages = [s for s in spans if s["name"] == f"GET {MODEL_ROUTE}"]
        if pages or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert pages, [s["name"] for s in spans]
    [page] = pages
    assert page["kind"] == "SpanKind.SERVER"
    assert page["attributes"]["http.route"] == MODEL_ROUTE
    assert page["attributes"]["http.response.status_code"] == 200
    trace_id = page["context"]["trace_id"]
    calls = [s for s in spans if s["kind"] == "SpanKind.CLIENT" and s["context"]["trace_id"] == trace_id]
    assert calls, "the page's gRPC calls are not in its trace"
    assert all(c["parent_id"] == page["context"]["span_id"] for c in calls)


def _console_spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter wrote (one JSON object each, among the log lines)."""
    spans, decoder, at = [], json.JSONDecoder(), 0
    while (at := log.find('{\n    "name"', at)) != -1:
        span, at = decoder.raw_decode(log, at)
        spans.append(span)
    return spans
