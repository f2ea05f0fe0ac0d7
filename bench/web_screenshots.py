"""Screenshots of the web UI's main pages for the README and docs/web.md.

    python -m bench.web_screenshots [--output docs/images]

Starts a LocalStack in a temporary directory and the web service, seeds a small realistic
namespace (bench/web_seed.py `demo`: models with model cards, versions with params, metrics,
histories, lineage and files, aliases, one protected, a review by a second person), signs in as
its owner in headless Chromium at 1280x800 and writes docs/images/web-{home,namespace,model,
version,compare,compare-chart,audit}.png. The content is the same on every run except for the
times shown, so run it again only after a visible UI change and commit the PNGs (about 700 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelreg.aio import AsyncClient
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.credentials import issue_token
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

from bench.web_seed import Seeder
from bench.web_service import web_service
from tests.chromium import charts_settled, chromium_path, signed_in_context

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "growth"
OWNER = "user:maria@example.com"
APPROVER = "user:sam@example.com"


def pages(model: str, versions: list[int]) -> dict[str, str]:
    namespace, model_id = model.split("/")
    at = f"/n/{namespace}/m/{model_id}"
    compared = "&".join(f"v={n}" for n in versions)
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "home": "/",
        "namespace": f"/n/{namespace}",
        "model": f"{at}?columns=metrics.auc,metrics.f1,metrics.latency_ms,params.trees&metric=auc",
        "version": f"{at}/v/{versions[-2]}",
        "compare": f"{at}/compare?{compared}&metric=auc",
        # What production pointed at a minute from now: the state-at-time answer, then the trail.
        "audit": f"/audit?alias={model}@production&at={soon}&model={model}",
    }


async def capture(output: Path) -> list[Path]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-screenshots-"))
    try:
        addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        with LocalStack(workdir / "stack", addresses=addresses, log_level="WARNING") as stack:
            admin = stack.admin_token()
            owner = issue_token(addresses.metadata, admin, OWNER, [(NAMESPACE, "admin")])
            approver_token = issue_token(addresses.metadata, admin, APPROVER, [(NAMESPACE, "approver")])
            seeder = Seeder(addresses.metadata, addresses.artifacts, owner)
            approver = AsyncClient(
                metadata_addr=addresses.metadata, artifact_addr=addresses.artifacts, token=approver_token
            )
            try:
                demo = await seeder.demo(NAMESPACE, workdir / "files", approver)
                with web_service(stack, workdir / "logs") as web:
                    return await photograph(web.url, owner, seeder, demo, output)
            finally:
                await approver.close()
                await seeder.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def photograph(
    base_url: str, token: str, seeder: Seeder, demo: dict[str, Any], output: Path
) -> list[Path]:
    from playwright.async_api import async_playwright  # noqa: PLC0415  (only this part needs it)

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium: run `make chromium` or set CHROMIUM_PATH")
    model, versions = demo["model"], demo["versions"]
    written: list[Path] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        page = await (await signed_in_context(browser, base_url, token)).new_page()
        for name, url in pages(model, versions).items():
            await page.goto(url)
            await page.wait_for_load_state("load")
            await charts_settled(page)
            if name == "home":  # the last steps happen while the live feed watches
                await page.get_by_test_id("feed-status").filter(has_text="live").wait_for()
                await seeder.demo_activity(model, versions[-1])
                await page.get_by_test_id("activity-item").nth(1).wait_for()
            written.append(output / f"web-{name}.png")
            await page.screenshot(path=str(written[-1]))
            if name == "compare":  # the overlaid histories, below the tables
                written.append(output / "web-compare-chart.png")
                chart = page.get_by_test_id("chart-compare-chart")
                await chart.scroll_into_view_if_needed()
                await page.screenshot(path=str(written[-1]))
        await browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default=str(ROOT / "docs" / "images"), help="where the PNGs go")
    output = Path(parser.parse_args().output)
    output.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(capture(output)):
        print(path)


if __name__ == "__main__":
    main()
