"""The live activity feed (SSE) and a web service whose registry is down."""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import httpx
import pytest
from modelreg_api.addresses import METADATA_ADDR_ENV
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

from tests.support import ALICE, credential_for, unique
from tests.web.browser import Browser
from tests.web.conftest import SignedIn, WebFactory
from tests.web.sample import client_for

pytestmark = pytest.mark.integration

Events = queue.Queue[dict[str, str]]


def follow(browser: Browser, headers: dict[str, str], into: Events, stop: threading.Event) -> None:
    """Read the SSE stream, putting each `registry` event (id, data) into `into`."""
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    with (
        httpx.Client(base_url=browser.base_url, timeout=httpx.Timeout(30, read=60)) as http,
        http.stream("GET", "/events/stream", headers={"cookie": cookie, **headers}) as response,
    ):
        into.put({"status": str(response.status_code)})
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if stop.is_set():
                return
            if not line:
                if event.get("event") == "registry":
                    into.put(event)
                event = {}
                continue
            key, _, value = line.partition(": ")
            event[key] = value


def test_a_new_event_reaches_the_feed_within_a_second(
    signed_in: SignedIn, stack: LocalStack, tmp_path: Path
) -> None:
    browser = signed_in()
    events: queue.Queue[dict[str, str]] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=follow, args=(browser, {}, events, stop), daemon=True)
    reader.start()
    assert events.get(timeout=10) == {"status": "200"}
    time.sleep(0.5)  # the stream is open and watching from now
    model = f"web-live/{unique('live')}"
    with client_for(stack, tmp_path / "cache") as registry:
        started = time.monotonic()
        registry.create_model(model)
        while True:
            event = events.get(timeout=5)
            data = json.loads(event["data"])
            if data["resource"] == model:
                break
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    assert data["action"] == "MODEL_CREATED"
    assert data["link"] == "/n/" + model.replace("/", "/m/", 1)
    assert data["actor"] == ALICE
    first = int(event["id"])

    # A reconnecting EventSource sends Last-Event-ID: the stream resumes right after it.
    with client_for(stack, tmp_path / "cache") as registry:
        registry.seal_version(registry.create_version(model).name)
    resumed: queue.Queue[dict[str, str]] = queue.Queue()
    again = threading.Thread(
        target=follow, args=(browser, {"last-event-id": str(first)}, resumed, stop), daemon=True
    )
    again.start()
    assert resumed.get(timeout=10) == {"status": "200"}
    following = resumed.get(timeout=10)
    assert int(following["id"]) == first + 1  # sequences have no gaps: the very next event
    stop.set()


def test_the_feed_needs_a_sign_in(web_url: str) -> None:
    response = httpx.get(f"{web_url}/events/stream", timeout=10)
    assert response.status_code == 401


def test_a_registry_that_is_down_shows_a_banner_not_a_stack_trace(
    start_web: WebFactory, web_url: str
) -> None:
    dead = start_web(wait=False, **{METADATA_ADDR_ENV: f"127.0.0.1:{free_port()}"})
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{dead.url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, dead.log_tail()
        time.sleep(0.2)
    assert httpx.get(f"{dead.url}/readyz", timeout=10).status_code == 503

    with Browser(web_url) as good, Browser(dead.url) as browser:
        good.sign_in(credential_for(ALICE))
        browser.cookies.update(good.cookies)  # replicas share the session key
        for path in ("/", "/n/web-ui", "/n/web-ui/m/anything/v/1", "/audit"):
            page = browser.get(path)
            assert page.status_code == 503, path
            assert 'data-testid="outage-banner"' in page.text
            assert "Traceback" not in page.text
            assert "grpc" not in page.text.lower()
        signin = browser.sign_in(credential_for(ALICE))
        assert signin.status_code == 503
        assert 'data-testid="outage-banner"' in signin.text


def test_sigterm_ends_live_streams_and_stops_cleanly(start_web: WebFactory) -> None:
    web = start_web()
    with Browser(web.url) as browser:
        browser.sign_in(credential_for(ALICE))
        events: Events = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(target=follow, args=(browser, {}, events, stop), daemon=True)
        reader.start()
        assert events.get(timeout=10) == {"status": "200"}
        started = time.monotonic()
        web.stop(timeout=20)  # SIGTERM, then SIGKILL after 20 s
        assert web.exited() == 0
        assert time.monotonic() - started < 10
        reader.join(timeout=5)
        assert not reader.is_alive()  # the event stream ended rather than being cut at exit
