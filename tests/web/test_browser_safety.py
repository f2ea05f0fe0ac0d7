"""In a real headless Chromium: stored `<script>` and `javascript:` payloads never run, a missing
model is a 404 page, and a web service whose registry is down shows a banner, never a trace.

The payloads go in through the API wherever users write text the UI shows: the model's display
name, description and model card, a version's description, tags, params (keys and values),
lineage, a metric's key and history (chart data), and review comments. A payload that ran would
set `window.pwned` or open a dialog; the tabs record both, and every `javascript:` link the
Markdown held is clicked to prove it does nothing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import grpc
import httpx
import pytest
from modelreg.aio import AsyncClient
from modelreg_api.addresses import METADATA_ADDR_ENV
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2
from playwright.async_api import Browser, expect

from tests.chromium import Tab, charts_settled, new_context, open_tab, sign_in
from tests.support import bearer, credential_for, unique
from tests.web.conftest import WebFactory

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

RAN = "window.pwned = (window.pwned || 0) + 1; alert('pwned')"
SCRIPT = f"<script>{RAN}</script>"
IMG = f'<img src="x" onerror="{RAN}">'
SVG = f'<svg onload="{RAN}"></svg>'
JS_URL = "javascript:window.pwned=1;alert('pwned')"
PAYLOAD = f"{SCRIPT}{IMG}{SVG}"
# Closes the JSON <script> block that carries chart data, if the page wrote it unescaped.
BREAKOUT_KEY = f"loss</script>{SCRIPT}"
MODEL_CARD = f"""# Card {SCRIPT}

[click me]({JS_URL}) and <a href="{JS_URL}">click me too</a> {IMG}

![picture]({JS_URL})

[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

{SVG}
"""

# No element carries an event handler attribute, no script runs but the page's own, and no
# link, form, frame or image can take a javascript: URL.
INERT = """() => {
  const scripts = [...document.scripts].filter(s => !(s.src && new URL(s.src).origin === location.origin)
                                                 && s.type !== 'application/json');
  const handlers = [...document.querySelectorAll('*')].filter(el =>
      [...el.attributes].some(a => a.name.toLowerCase().startsWith('on')));
  const urls = [...document.querySelectorAll('[href],[src],[action],[formaction],[data]')].filter(el =>
      ['href', 'src', 'action', 'formaction', 'data'].some(name =>
          /^\\s*(javascript|data|vbscript):/i.test(el.getAttribute(name) || '')));
  return {pwned: window.pwned || 0, scripts: scripts.map(s => s.outerHTML.slice(0, 80)),
          handlers: handlers.map(el => el.outerHTML.slice(0, 80)),
          urls: urls.map(el => el.outerHTML.slice(0, 80)),
          frames: document.querySelectorAll('iframe, object, embed').length};
}"""


async def assert_inert(tab: Tab) -> None:
    found = await tab.page.evaluate(INERT)
    assert found == {"pwned": 0, "scripts": [], "handlers": [], "urls": [], "frames": 0}, found
    assert tab.dialogs == [], tab.dialogs
    # The Content-Security-Policy would block an injected script; it must not even have to.
    blocked = [message for message in tab.console_errors if "Content Security Policy" in message]
    assert blocked == [], blocked


def registry_as(stack: LocalStack, token: str) -> AsyncClient:
    return AsyncClient(
        metadata_addr=stack.addresses.metadata, artifact_addr=stack.addresses.artifacts, token=token
    )


async def store_payloads(stack: LocalStack, namespace: str, owner: str, approver: str) -> str:
    """A model and two versions carrying the payloads everywhere; returns `ns/model`."""
    model = f"{namespace}/payloads"
    async with registry_as(stack, owner) as registry:
        await registry.create_model(
            model, display_name=SCRIPT, description=f"{PAYLOAD} [click me]({JS_URL})", model_card=MODEL_CARD
        )
        names = []
        for number in (1, 2):
            version = await registry.create_version(
                model,
                description=PAYLOAD,
                params={PAYLOAD: JS_URL, "nested": {"html": IMG, "url": JS_URL}, "lr": 0.1 * number},
                metrics={BREAKOUT_KEY: 0.5 + 0.1 * number, "auc": 0.8},
                tags={"note": PAYLOAD, "link": JS_URL},
                lineage={
                    "training_run_url": JS_URL,
                    "training_run_id": SCRIPT,
                    "source_repository": JS_URL,
                    "datasets": [{"uri": JS_URL, "digest": "sha256:" + "ab" * 32, "role": SCRIPT}],
                },
            )
            await registry.seal_version(version.name)
            names.append(version.name)
        await registry.submit_for_review(names[1], comment=f"{PAYLOAD} {JS_URL}")
    async with registry_as(stack, approver) as registry:
        await registry.reject_version(names[1], comment=f"{SCRIPT} [click me]({JS_URL})")
    async with registry_as(stack, owner) as registry:
        await registry.set_alias(model, "candidate", 2)
    # The metric's history is what the charts draw (their data sits in a JSON <script> block).
    points = [model_pb2.MetricPoint(key=BREAKOUT_KEY, value=1.0 / (s + 1), step=s) for s in range(20)]
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        stub: MetadataStub = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        for name in names:
            request = md.LogMetricsRequest(model_version=name, points=points, request_id=unique("log"))
            await stub.LogMetrics(request, metadata=bearer(owner))
    return model


async def test_stored_payloads_never_run(
    chromium: Browser, web_url: str, stack: LocalStack, screenshots: Path
) -> None:
    namespace = unique("xss")
    owner = credential_for("mallory@example.com", "admin", namespace)
    approver = credential_for("eve@example.com", "approver", namespace)
    model = await store_payloads(stack, namespace, owner, approver)
    at = f"/n/{model.replace('/', '/m/', 1)}"
    metric = quote(BREAKOUT_KEY, safe="")
    context = await new_context(chromium, web_url)
    tab = await open_tab(context, screenshots, "mallory")
    await sign_in(tab.page, owner)

    # The home page's live feed shows an event whose resource the payload model names.
    await tab.page.goto("/")
    await expect(tab.page.get_by_test_id("feed-status")).to_have_text("live")
    await asyncio.sleep(0.5)
    async with registry_as(stack, owner) as registry:
        await registry.set_alias(model, "candidate", 1)
    await expect(tab.page.get_by_test_id("activity-item").first).to_contain_text(f"{model}@candidate")
    await assert_inert(tab)
    await tab.shoot("home")

    pages = {
        "namespace": f"/n/{namespace}",
        "model": f"{at}?columns=tags.note,params.nested.html,metrics.auc&metric={metric}",
        "version-1": f"{at}/v/1",
        "version-2": f"{at}/v/2",
        "compare": f"{at}/compare?v=1&v=2&metric={metric}",
        "audit": f"/audit?model={quote(model, safe='')}",
    }
    for name, url in pages.items():
        response = await tab.page.goto(url)
        assert response is not None
        assert response.status == 200, (name, response.status)
        await tab.page.wait_for_load_state("load")
        await charts_settled(tab.page)  # the payload metric's history arrives as JSON, then drawn
        await assert_inert(tab)
        await tab.shoot(name)

    # What users wrote is shown as text: the payload is readable on the page, not markup.
    await tab.page.goto(f"{at}/v/2")
    await expect(tab.page.get_by_test_id("version-description")).to_contain_text(SCRIPT)
    await expect(tab.page.get_by_test_id("review-comment").first).to_contain_text(SCRIPT)
    await expect(tab.page.get_by_test_id("params")).to_contain_text(IMG)

    # The model card's links: every "click me" is clicked; none runs anything.
    await tab.page.goto(at)
    links = tab.page.get_by_test_id("model-card").get_by_text("click me")
    for index in range(await links.count()):
        await links.nth(index).click()
        await tab.page.wait_for_load_state("load")
        await assert_inert(tab)
        if not tab.page.url.startswith(f"{web_url}{at}"):
            await tab.page.goto(at)
    await tab.shoot("model-card-links-clicked")

    assert tab.page_errors == [], tab.page_errors
    await context.close()


async def test_a_missing_model_is_a_404_page(chromium: Browser, web_url: str, screenshots: Path) -> None:
    context = await new_context(chromium, web_url)
    tab = await open_tab(context, screenshots)
    await sign_in(tab.page, credential_for("nobody@example.com", "viewer", unique("empty")))
    for name, url in {
        "model": f"/n/{unique('nowhere')}/m/no-such-model",
        "version": f"/n/{unique('nowhere')}/m/no-such-model/v/7",
        "route": "/no/such/page",
    }.items():
        response = await tab.page.goto(url)
        assert response is not None
        assert response.status == 404, (url, response.status)
        await expect(tab.page.get_by_test_id("error-title")).to_have_text("Not found")
        await expect(tab.page.get_by_test_id("nav-home")).to_be_visible()  # the way back
        assert "Traceback" not in await tab.page.content()
        await tab.shoot(f"404-{name}")
    assert tab.page_errors == [], tab.page_errors
    await context.close()


async def test_a_registry_that_is_down_shows_a_banner(
    chromium: Browser, web_url: str, start_web: WebFactory, screenshots: Path
) -> None:
    dead = start_web(wait=False, **{METADATA_ADDR_ENV: f"127.0.0.1:{free_port()}"})
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=dead.url, timeout=2) as http:
        while True:  # it serves HTTP (healthz) but is not ready: the registry is unreachable
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, dead.log_tail()
            await asyncio.sleep(0.2)

    # Signed in on the healthy replica; cookies are per host, so the dead replica gets them too.
    context = await new_context(chromium, web_url)
    tab = await open_tab(context, screenshots)
    await sign_in(tab.page, credential_for("olga@example.com", "viewer", unique("down")))
    for name, path in {"home": "/", "model": "/n/anything/m/model", "audit": "/audit"}.items():
        response = await tab.page.goto(f"{dead.url}{path}")
        assert response is not None
        assert response.status == 503, (path, response.status)
        banner = tab.page.get_by_test_id("outage-banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("cannot be reached")
        text = await tab.page.locator("body").inner_text()
        assert "Traceback" not in text
        assert "grpc" not in text.lower()
        await tab.shoot(f"outage-{name}")
    assert tab.page_errors == [], tab.page_errors
    await context.close()
