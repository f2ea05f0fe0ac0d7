"""The README tour in a real headless Chromium: push with the CLI, find the model, compare two
versions, approve as a second person (four eyes), download a file and run the copied pull
command, move an alias and watch it arrive live in another tab; and the same pages driven from
the keyboard alone.

Each person is a principal of their own with a role in the tour's namespace only (so the home
page lists exactly that namespace): dana (admin: pushes, submits, moves aliases) and bob
(approver). Every step is photographed (tests/chromium.py says where the PNGs are kept).
"""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from modelreg.credentials import TOKEN_ENV
from modelreg_local.stack import LocalStack
from playwright.async_api import Browser, BrowserContext, expect

from tests.chromium import Tab, new_context, open_tab, sign_in
from tests.command_line import Cli, environment
from tests.support import credential_for, unique

pytestmark = pytest.mark.integration

# The feed shows an event within a second of the change (issue 13).
LIVE_WITHIN_SECONDS = 1.0


def push(cli: Cli, model: str, folder: Path, *args: str) -> str:
    """`modelreg push` of a small file of unique content; returns NS/MODEL/NUMBER."""
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(folder.name.encode() * 100)
    return cli.ok("push", model, str(folder), "-q", *args).stdout.strip()


async def person(chromium: Browser, web_url: str, token: str, shots: Path, label: str) -> Tab:
    """A browser profile of its own, signed in with `token`; every request it makes is recorded."""
    tab = await open_tab(await new_context(chromium, web_url), shots, label)
    await sign_in(tab.page, token)
    return tab


def assert_healthy(web_url: str, *tabs: Tab) -> None:
    """No page script failed, nothing opened a dialog, and nothing was fetched from elsewhere
    (every asset ships with the service: no CDN)."""
    for tab in tabs:
        assert tab.page_errors == [], tab.page_errors
        assert tab.dialogs == [], tab.dialogs
        origins = {f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" for url in tab.requests}
        assert origins == {web_url}, origins


async def close(*tabs: Tab) -> None:
    contexts: list[BrowserContext] = [tab.page.context for tab in tabs]
    for context in dict.fromkeys(contexts):
        await context.close()


async def test_readme_tour(
    chromium: Browser, web_url: str, stack: LocalStack, tmp_path: Path, screenshots: Path
) -> None:
    namespace = unique("tour")
    model = f"{namespace}/churn"
    dana_cli = Cli(environment(stack, tmp_path / "cache", "dana@example.com", "admin", namespace), tmp_path)
    first = push(dana_cli, model, tmp_path / "v1", "--metric", "auc=0.91", "--param", "lr=0.1",
                 "--param", "depth=8", "--tag", "team=growth", "--alias", "production")  # fmt: skip
    second = push(dana_cli, model, tmp_path / "v2", "--metric", "auc=0.95", "--param", "lr=0.05",
                  "--param", "depth=8", "--tag", "team=growth")  # fmt: skip
    assert (first, second) == (f"{model}/1", f"{model}/2")

    dana = await person(chromium, web_url, dana_cli.env[TOKEN_ENV], screenshots, "dana")
    page = dana.page

    # Home: dana's one namespace first, with its counts; the model among the recent ones.
    await page.goto("/")
    row = page.get_by_test_id("your-namespaces").get_by_test_id("namespace-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-namespace", namespace)
    await expect(row.locator("td")).to_have_text(["1", "2"])
    await expect(page.get_by_test_id("recent-models").get_by_role("link", name=model)).to_be_visible()
    await expect(page.get_by_test_id("principal")).to_have_text("user:dana@example.com")
    await dana.shoot("home")

    # Namespace: the filter box takes the filter language; a syntax error shows at its position.
    await row.get_by_role("link", name=namespace).click()
    await expect(page).to_have_url(re.compile(f"/n/{namespace}$"))
    await page.get_by_test_id("filter-input").fill("model_id STARTS_WITH")
    await page.get_by_test_id("filter-input").press("Enter")
    error = page.get_by_test_id("filter-error")
    await expect(error).to_be_visible()
    await expect(error).to_have_attribute("data-position", re.compile(r"^\d+$"))
    await expect(page.get_by_test_id("filter-input")).to_have_attribute("aria-invalid", "true")
    await dana.shoot("namespace-filter-error")
    await page.get_by_test_id("filter-input").fill('model_id STARTS_WITH "churn"')
    await page.get_by_test_id("filter-input").press("Enter")
    await expect(page.get_by_test_id("model-row")).to_have_count(1)
    await expect(page.get_by_test_id("model-row")).to_have_attribute("data-model", model)
    await dana.shoot("namespace-filtered")
    await page.get_by_test_id("model-row").get_by_role("link", name="churn").click()

    # Model: the alias, both versions; pick two and compare.
    await expect(page).to_have_url(re.compile(f"/n/{namespace}/m/churn$"))
    production = page.locator("[data-testid=alias-row][data-alias=production]")
    await expect(production.get_by_test_id("alias-version")).to_have_text("v1")
    await expect(page.get_by_test_id("version-row")).to_have_count(2)
    await dana.shoot("model")
    for number in ("1", "2"):
        await (
            page.locator(f"[data-testid=version-row][data-version='{number}']")
            .get_by_test_id("compare-checkbox")
            .check()
        )
    await page.get_by_test_id("compare-button").click()
    await expect(page).to_have_url(re.compile(r"/compare\?v=[12]&v=[12]$"))
    params = page.get_by_test_id("compare-params-table")
    await expect(params.locator("tr[data-key=lr]")).to_have_attribute("data-differs", "true")
    await expect(params.locator("tr[data-key=depth]")).to_have_attribute("data-differs", "false")
    metrics = page.get_by_test_id("compare-metrics-table")
    auc = metrics.locator("tr[data-key=auc]")
    await expect(auc).to_have_attribute("data-differs", "true")
    # The columns are in the order the versions were picked (the table lists newest first).
    columns = await metrics.locator("thead th").all_inner_texts()
    values = await auc.locator("td").all_inner_texts()
    assert dict(zip(columns[1:], values, strict=True)) == {"v1": "0.91", "v2": "0.95"}
    await dana.shoot("compare")

    # Review: dana submits version 2; approving her own version is refused (four eyes).
    await page.goto(f"/n/{namespace}/m/churn/v/2")
    await page.get_by_test_id("submit-form").get_by_role("textbox").fill("AUC up 4 points")
    await page.get_by_test_id("submit-button").click()
    await expect(page.get_by_test_id("review-state")).to_have_text("PENDING")
    await page.get_by_test_id("approve-button").click()
    refusal = page.get_by_test_id("refusal")
    await expect(refusal).to_have_attribute("data-reason", "SELF_APPROVAL_NOT_ALLOWED")
    await expect(page.get_by_test_id("refusal-explanation")).to_be_visible()
    await dana.shoot("approve-own-version-refused")

    # bob, an approver of the namespace, approves it in his own browser.
    bob_token = credential_for("bob@example.com", "approver", namespace)
    bob = await person(chromium, web_url, bob_token, screenshots, "bob")
    await bob.page.goto(f"/n/{namespace}/m/churn/v/2")
    await bob.page.get_by_test_id("approve-form").get_by_role("textbox").fill("Checked the eval slices")
    await bob.page.get_by_test_id("approve-button").click()
    await expect(bob.page.get_by_test_id("review-state")).to_have_text("APPROVED")
    await expect(bob.page.get_by_test_id("review").last).to_contain_text("user:bob@example.com")
    await expect(bob.page.get_by_test_id("review-comment").last).to_have_text("Checked the eval slices")
    await bob.shoot("approved")

    # dana downloads the file with the page's button, and copies the pull command, which works.
    await page.goto(f"/n/{namespace}/m/churn/v/2")
    pushed = (tmp_path / "v2" / "model.bin").read_bytes()
    async with page.expect_download() as downloading:
        await (
            page.locator("[data-testid=file-row][data-path='model.bin']")
            .get_by_test_id("file-download")
            .click()
        )
    download = await downloading.value
    await download.save_as(tmp_path / "downloaded.bin")
    assert (tmp_path / "downloaded.bin").read_bytes() == pushed
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_url)
    await page.get_by_test_id("copy-button").click()
    await expect(page.get_by_test_id("copy-button")).to_have_text("Copied")
    command = await page.evaluate("navigator.clipboard.readText()")
    assert command == await page.get_by_test_id("pull-command").inner_text()
    program, *arguments = shlex.split(command)
    assert program == "modelreg"
    dana_cli.ok(*arguments)
    assert (tmp_path / arguments[-1] / "model.bin").read_bytes() == pushed
    await dana.shoot("downloaded-and-pulled")

    # dana watches the home page's live feed while bob moves production to version 2.
    await page.goto("/")
    await expect(page.get_by_test_id("feed-status")).to_have_text("live")
    await page.evaluate("window.tourMarker = 'not reloaded'")
    await asyncio.sleep(0.5)  # the stream follows the registry from its first moment on
    await bob.page.goto(f"/n/{namespace}/m/churn")
    move = bob.page.locator("[data-testid=alias-row][data-alias=production]").get_by_test_id(
        "alias-move-form"
    )
    await move.get_by_role("textbox").fill("2")
    loop = asyncio.get_running_loop()
    async with bob.page.expect_response(lambda r: r.request.method == "POST") as answer:
        await move.get_by_role("button", name="Move").click()
    assert (await answer.value).status == 303
    moved_at = loop.time()
    arrived = page.get_by_test_id("activity-item").filter(has_text=f"{model}@production")
    await page.wait_for_function(
        "resource => [...document.querySelectorAll('[data-testid=activity-item]')]"
        ".some(item => item.textContent.includes(resource))",
        arg=f"{model}@production",
        polling=20,
        timeout=10_000,
    )
    elapsed = loop.time() - moved_at
    assert elapsed < LIVE_WITHIN_SECONDS, f"the move reached the other tab's feed after {elapsed:.2f} s"
    await expect(arrived.first).to_contain_text("ALIAS_MOVED")
    await expect(arrived.first).to_contain_text("user:bob@example.com")
    assert await page.evaluate("window.tourMarker") == "not reloaded"
    await dana.shoot("feed-shows-the-move")
    production = bob.page.locator("[data-testid=alias-row][data-alias=production]")
    await expect(production.get_by_test_id("alias-version")).to_have_text("v2")
    await bob.shoot("alias-moved")

    assert_healthy(web_url, dana, bob)
    await close(dana, bob)


async def focused_testid(tab: Tab) -> str | None:
    result = await tab.page.evaluate("document.activeElement && document.activeElement.dataset.testid")
    return result if isinstance(result, str) else None


async def tab_until(tab: Tab, predicate: str, presses: int = 40) -> None:
    """Press Tab until `predicate` (a JS expression over `el`, the focused element) holds."""
    for _ in range(presses):
        await tab.page.keyboard.press("Tab")
        if await tab.page.evaluate(f"(el => Boolean({predicate}))(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached an element where {predicate}")


async def assert_focus_visible(tab: Tab) -> None:
    """The focused element shows a focus ring (`:focus-visible` with a visible outline)."""
    ring = await tab.page.evaluate(
        """() => { const el = document.activeElement; const style = getComputedStyle(el);
        return {visible: el.matches(':focus-visible'), style: style.outlineStyle,
                width: parseFloat(style.outlineWidth)}; }"""
    )
    assert ring["visible"], ring
    assert ring["style"] != "none", ring
    assert ring["width"] > 0, ring


async def test_keyboard_navigation(
    chromium: Browser, web_url: str, stack: LocalStack, tmp_path: Path, screenshots: Path
) -> None:
    namespace = unique("keys")
    cli = Cli(environment(stack, tmp_path / "cache", "kim@example.com", "admin", namespace), tmp_path)
    push(cli, f"{namespace}/ranker", tmp_path / "r1", "--metric", "ndcg=0.7")
    push(cli, f"{namespace}/tagger", tmp_path / "t1", "--metric", "f1=0.8")
    kim = await person(chromium, web_url, cli.env[TOKEN_ENV], screenshots, "kim")
    page = kim.page

    # The first Tab reaches the skip link, which shows itself; Enter moves focus to the content.
    await page.goto("/")
    await page.keyboard.press("Tab")
    assert await focused_testid(kim) == "skip-link"
    await assert_focus_visible(kim)
    await expect(page.get_by_test_id("skip-link")).to_be_in_viewport()
    await kim.shoot("skip-link-focused")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile("#main$"))
    assert await page.evaluate("document.activeElement.id") == "main"

    # From the content, Tab reaches the namespace's link; Enter follows it.
    await tab_until(kim, f"el.getAttribute('href') === '/n/{namespace}'")
    await assert_focus_visible(kim)
    await kim.shoot("namespace-link-focused")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(f"/n/{namespace}$"))

    # The filter box: reached by Tab, submitted by Enter.
    await tab_until(kim, "el.dataset.testid === 'filter-input'")
    await assert_focus_visible(kim)
    await page.keyboard.type('model_id = "tagger"')
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"filter=model_id"))
    await expect(page.get_by_test_id("model-row")).to_have_count(1)
    await kim.shoot("filtered-by-keyboard")
    await tab_until(kim, f"el.getAttribute('href') === '/n/{namespace}/m/tagger'")
    await assert_focus_visible(kim)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(f"/n/{namespace}/m/tagger$"))

    # A sortable column header is a button: Enter sorts and says so (aria-sort).
    await tab_until(kim, "el.matches('th button')")
    await assert_focus_visible(kim)
    header = page.locator("th", has=page.locator("button:focus"))
    await page.keyboard.press("Enter")
    await expect(header).to_have_attribute("aria-sort", re.compile("ascending|descending"))
    await kim.shoot("sorted-by-keyboard")

    assert_healthy(web_url, kim)
    await close(kim)
