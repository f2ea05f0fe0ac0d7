"""The web service as the benchmark and the screenshots run it: a process of its own next to a
LocalStack, and users signed in to it over HTTP (httpx) or in Chromium (Playwright).

Signing in is what a person does: open /signin, paste an API token, submit the form (which
carries the CSRF field of the page); the session then lives in the service's cookies.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

import httpx
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ViewportSize

CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


class WebService:
    """`python -m modelreg_web` against `stack`, on a free port, logging to `log_dir`."""

    def __init__(self, stack: LocalStack, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "MODELREG_METADATA_ADDR": stack.addresses.metadata,
            "MODELREG_ARTIFACT_ADDR": stack.addresses.artifacts,
            "MODELREG_WEB_ADDR": f"127.0.0.1:{self.port}",
            "MODELREG_WEB_SESSION_KEY": secrets.token_urlsafe(32),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self._log_path = log_dir / f"web-{self.port}.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "modelreg_web"], env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/signin", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the web service did not start: {self._log_path.read_text()[-2000:]}")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()


async def http_session(base_url: str, token: str) -> httpx.AsyncClient:
    """An HTTP client signed in with `token` (cookies kept by the client)."""
    client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
    form = await client.get("/signin")
    form.raise_for_status()
    found = CSRF_FIELD.search(form.text)
    if found is None:
        raise RuntimeError("the sign-in page has no CSRF field")
    done = await client.post("/signin", data={"token": token, "csrf_token": found.group(1)})
    if done.status_code >= 400 or "signin" in str(done.url):
        raise RuntimeError(f"sign-in refused: HTTP {done.status_code}")
    return client


async def browser_session(browser: Browser, base_url: str, token: str) -> BrowserContext:
    """A browser profile signed in with `token`, at the screenshots' 1280x800."""
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto("/signin")
    await page.locator("input[name=token]").fill(token)
    await page.locator("form[action='/signin'] [type=submit]").click()
    await page.wait_for_url(lambda url: "/signin" not in url)
    await page.close()
    return context
