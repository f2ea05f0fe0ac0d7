"""Screenshots of the web UI's main pages for the README and docs/web.md.

    python -m bench.web_screenshots [--output docs/images]

Starts a LocalStack in a temporary directory and the web service, seeds a small realistic
namespace (bench/web_seed.py `demo`: models with model cards, versions with params, metrics,
histories, lineage and files, aliases, one protected, a review by a second person), signs in as
its owner in headless Chromium at 1280x800 and writes docs/images/web-{home,namespace,model,
version,compare,audit}.png. The content is deterministic, so the images change only when the UI
does. Run it again after a visible UI change and commit the PNGs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from modelreg.aio import AsyncClient
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.credentials import issue_token
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

from bench.web_seed import Seeder
from bench.web_service import WebService, browser_session

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "growth"
OWNER = "user:maria@example.com"
APPROVER = "user:sam@example.com"
CHART_DRAWN = "modelreg:chart-drawn"


def pages(model: str, versions: list[int]) -> dict[str, str]:
    namespace, model_id = model.split("/")
    at = f"/n/{namespace}/m/{model_id}"
    compared = "&".join(f"v={n}" for n in versions)
    return {
        "home": "/",
        "namespace": f"/n/{namespace}",
        "model": f"{at}?columns=metrics.auc,metrics.f1,metrics.latency_ms,params.trees&metric=auc",
        "version": f"{at}/v/{versions[-2]}",
        "compare": f"{at}/compare?{compared}",
        "audit": "/audit",
    }


async def capture(output: Path) -> list[Path]:
    from playwright.async_api import async_playwright  # noqa: PLC0415

    from tests.browser import chromium_path  # noqa: PLC0415

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium: run `make chromium` or set CHROMIUM_PATH")
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-screenshots-"))
    written: list[Path] = []
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
            finally:
                await approver.close()
                await seeder.close()
            with WebService(stack, workdir / "logs") as web:
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(executable_path=executable, headless=True)
                    context = await browser_session(browser, web.url, owner)
                    page = await context.new_page()
                    for name, url in pages(demo["model"], demo["versions"]).items():
                        await page.goto(url)
                        await page.wait_for_load_state("load")
                        if await page.locator("[data-chart]").count():
                            await page.wait_for_function(
                                f"performance.getEntriesByName({CHART_DRAWN!r}).length > 0"
                            )
                        path = output / f"web-{name}.png"
                        await page.screenshot(path=str(path))
                        written.append(path)
                    await browser.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
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
