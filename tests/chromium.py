"""Chromium fixtures: a real headless Chromium driven by Playwright (tests/web/test_browser*.py).

Playwright drives Debian's `chromium` package through `executable_path` (CHROMIUM_PATH overrides
where it is). Playwright's own browser download (`playwright install`) fetches from a CDN that our
machines cannot reach, so it is never used; `make chromium` (part of `make tools`) installs the
Debian package. Without a Chromium the browser tests are skipped with the command to run, except
under CI, where that is a failure.

Every page a test looks at is photographed (`Tab.shoot`): the PNGs are kept in
`<pytest's base temp>/screenshots/<test>/NN-<step>.png` (pytest keeps the last three runs'
directories under /tmp/pytest-of-$USER/), or under `--screenshots DIR` when given; the run's
summary prints where.

Each `Tab` listens to the page: dialogs (alert/confirm/prompt) are recorded and dismissed, and
uncaught JavaScript errors are recorded, so a test can assert that a stored payload never ran
and that the page's own scripts never failed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Dialog,
        Error,
        Page,
        ViewportSize,
    )

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ENV = "CHROMIUM_PATH"
# The real binary first: Debian's /usr/bin/chromium is a shell wrapper whose /dev/shm check prints
# "[: unexpected operator" under dash; both work.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
# The size the README's and docs' screenshots use too (bench/web_screenshots.py).
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def chromium_path() -> str | None:
    """The Chromium binary to drive: $CHROMIUM_PATH, else Debian's, else `chromium` on PATH."""
    if given := os.environ.get(CHROMIUM_ENV):
        return given if os.access(given, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="keep the browser tests' screenshots in DIR (default: <basetemp>/screenshots)",
    )


# Where this run's screenshots went, once a test took one (for the summary line).
SCREENSHOT_ROOT = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    root = config.stash.get(SCREENSHOT_ROOT, None)
    if root is not None and any(root.rglob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {root}")


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the session (each test opens contexts of its own)."""
    executable = chromium_path()
    if executable is None:
        where = os.environ.get(CHROMIUM_ENV) or " or ".join(CHROMIUM_CANDIDATES)
        message = (
            f"no Chromium at {where}: run `make chromium` (apt-get install chromium) or set {CHROMIUM_ENV}"
        )
        if IN_CI:
            pytest.fail(f"the browser tests need Chromium under CI: {message}", pytrace=False)
        pytest.skip(message)
    from playwright.async_api import async_playwright  # noqa: PLC0415  (only the browser tests pay for it)

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test's screenshot directory (kept after the run)."""
    given = request.config.getoption("--screenshots")
    root = Path(given).resolve() if given else tmp_path_factory.getbasetemp() / "screenshots"
    request.config.stash[SCREENSHOT_ROOT] = root
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]
    directory = root / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@dataclass
class Tab:
    """A page with what it has seen: dialogs opened, uncaught errors, console errors, requests."""

    page: Page
    shots: Path
    label: str = ""
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page fetched

    def __post_init__(self) -> None:
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("console", self._on_console)
        self.page.on("request", lambda request: self.requests.append(request.url))

    async def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def _on_page_error(self, error: Error) -> None:
        self.page_errors.append(str(error))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    async def shoot(self, step: str) -> Path:
        """Photograph the whole page as the next numbered PNG of this test."""
        number = len(list(self.shots.glob("*.png"))) + 1
        prefix = f"{self.label}-" if self.label else ""
        path = self.shots / f"{number:02d}-{prefix}{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


# Version and compare pages fetch their charts' data after they arrive; each figure then says
# data-state="drawn" (or "failed").
CHARTS_SETTLED = """() => [...document.querySelectorAll('figure[data-chart-src]')]
    .every(figure => figure.dataset.state === 'drawn' || figure.dataset.state === 'failed')"""


async def charts_settled(page: Page) -> None:
    """Wait until every chart of the page that fetches its data has drawn (or failed)."""
    await page.wait_for_function(CHARTS_SETTLED)


async def open_tab(context: BrowserContext, shots: Path, label: str = "") -> Tab:
    return Tab(await context.new_page(), shots, label)


async def new_context(browser: Browser, base_url: str) -> BrowserContext:
    """A fresh browser profile (own cookies) at the screenshots' viewport size."""
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    return context


async def sign_in(page: Page, token: str) -> None:
    """Sign in as a person does: open /signin, paste the token, submit (docs/web.md)."""
    await page.goto("/signin")
    await page.get_by_test_id("signin-token").fill(token)
    await page.get_by_test_id("signin-submit").click()
    await page.wait_for_url(lambda url: "/signin" not in url)


async def signed_in_context(browser: Browser, base_url: str, token: str) -> BrowserContext:
    """A fresh browser profile signed in with `token`."""
    context = await new_context(browser, base_url)
    page = await context.new_page()
    await sign_in(page, token)
    await page.close()
    return context
