"""Web UI benchmark: server-side latency of every page kind with 10,000 versions in one namespace,
the compare page of 10 versions x 5,000-step histories drawn in Chromium, and the shipped
JavaScript's gzipped size.

    python -m bench.web_bench [--versions 10000] [--requests 200] [--steps 5000] [--renders 5]

Targets (issue 13): every page at most 150 ms at p95 on the server; the compare page drawn in
under a second in the browser; at most 300 KB of JavaScript gzipped.

It runs its own LocalStack in `--data` (default .data/bench-web, kept: a second run reuses the
versions the first one created and only adds what is missing) and the web service as its own
process (bench/web_service.py). Seeding goes through the gRPC API, 32 requests at a time.

- Page latency: one signed-in HTTP client (httpx, keep-alive, on the same machine) requests each
  page kind `--requests` times one after another, after 5 warm-up requests, and takes the time
  from sending the request to the last byte of the response: the server's time plus a loopback
  round trip. Page kinds: home, namespace (first page of the models), model (versions table
  with picked columns), version, compare (10 versions), audit (first page of the trail).
- Compare drawn: Chromium (Debian's, headless) signed in, navigates to the compare page of the
  10 history versions `--renders` times (a fresh page each time, HTTP cache warm after the first)
  and reads the time from the navigation's start to the chart's `modelreg:chart-drawn`
  performance mark, which the page sets once the chart is on screen.
- JavaScript: every .js the service ships (its static directory), gzipped at level 6 (gzip's
  default), summed.

The load generator and the browser share the machine's cores with the services; the 1-minute
load average before and after each measurement is recorded. Results: bench/results/web.json and
bench/results/web.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

from bench.web_seed import Seeder
from bench.web_service import WebService, browser_session, http_session

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NAMESPACE = "bench-web"
MODELS = 10
COMPARED = 10
WARMUP = 5
P95_TARGET_MS = 150.0
DRAWN_TARGET_MS = 1000.0
JS_BUDGET_BYTES = 300 * 1024
CHART_DRAWN_MARK = "modelreg:chart-drawn"
COLUMNS = "metrics.auc,metrics.loss,params.optimizer.lr,tags.team"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)


def history_model(steps: int) -> str:
    """The model of the compared versions (one per history length, so runs never mix them)."""
    return f"histories-{steps}"


def page_kinds(versions_per_model: int, steps: int) -> dict[str, Callable[[int], str]]:
    """Each page kind's URL for the i-th request (spread over models and versions)."""
    model = f"/n/{NAMESPACE}/m"
    compared = "&".join(f"v={n}" for n in range(1, COMPARED + 1))

    def version(i: int) -> str:
        rng = random.Random(i)
        return f"{model}/model-{i % MODELS}/v/{rng.randint(1, max(1, versions_per_model))}"

    return {
        "home": lambda i: "/",
        "namespace": lambda i: f"/n/{NAMESPACE}",
        "model": lambda i: f"{model}/model-{i % MODELS}?columns={COLUMNS}",
        "version": version,
        "compare": lambda i: f"{model}/{history_model(steps)}/compare?{compared}",
        "audit": lambda i: "/audit",
    }


async def page_latency(client: httpx.AsyncClient, url: Callable[[int], str], requests: int) -> dict[str, Any]:
    for i in range(WARMUP):
        (await client.get(url(i))).raise_for_status()
    before = load()
    samples: list[float] = []
    for i in range(requests):
        started = time.perf_counter()
        reply = await client.get(url(i))
        await reply.aread()
        samples.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
    return {
        "requests": requests,
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": round(max(samples), 2),
        "load_before": before,
        "load_after": load(),
    }


async def compare_drawn(base_url: str, token: str, steps: int, renders: int) -> dict[str, Any]:
    """Milliseconds from navigation start to the compare chart drawn, per render."""
    from playwright.async_api import async_playwright  # noqa: PLC0415

    from tests.browser import chromium_path  # noqa: PLC0415  (one place decides which Chromium)

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium: run `make chromium` or set CHROMIUM_PATH")
    url = f"/n/{NAMESPACE}/m/{history_model(steps)}/compare?" + "&".join(
        f"v={n}" for n in range(1, COMPARED + 1)
    )
    before = load()
    drawn: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        context = await browser_session(browser, base_url, token)
        for _ in range(renders):
            page = await context.new_page()
            await page.goto(url)
            await page.wait_for_function(
                f"performance.getEntriesByName({CHART_DRAWN_MARK!r}).length > 0", timeout=60_000
            )
            drawn.append(
                await page.evaluate(f"performance.getEntriesByName({CHART_DRAWN_MARK!r})[0].startTime")
            )
            await page.close()
        await browser.close()
    return {
        "renders": renders,
        "drawn_ms": [round(ms, 1) for ms in drawn],
        "median_ms": round(statistics.median(drawn), 1),
        "max_ms": round(max(drawn), 1),
        "chromium": executable,
        "load_before": before,
        "load_after": load(),
    }


def shipped_javascript() -> dict[str, Any]:
    """Every .js file the web service ships, raw and gzipped (level 6)."""
    import modelreg_web  # noqa: PLC0415

    static = Path(modelreg_web.__file__).parent / "static"
    files = {}
    for path in sorted(static.rglob("*.js")):
        data = path.read_bytes()
        files[str(path.relative_to(static))] = {
            "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=6, mtime=0)),
        }
    total = sum(entry["gzip_bytes"] for entry in files.values())
    return {"files": files, "gzip_total_bytes": total, "budget_bytes": JS_BUDGET_BYTES}


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    data: Path = args.data
    addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    results: dict[str, Any] = {"versions": args.versions}
    with LocalStack(data, addresses=addresses, log_level="WARNING") as stack:
        token = stack.admin_token()
        seeder = Seeder(addresses.metadata, addresses.artifacts, token)
        try:
            started, before = time.monotonic(), load()
            created = await seeder.bench_namespace(NAMESPACE, args.versions, models=MODELS)
            await seeder.history_model(
                NAMESPACE, history_model(args.steps), versions=COMPARED, steps=args.steps
            )
            results["seed"] = {
                "created": created,
                "reused": args.versions - created,
                "seconds": round(time.monotonic() - started, 1),
                "load_before": before,
            }
        finally:
            await seeder.close()
        with WebService(stack, data / "logs") as web:
            client = await http_session(web.url, token)
            try:
                kinds = page_kinds(args.versions // MODELS, args.steps)
                results["pages"] = {
                    kind: await page_latency(client, url, args.requests) for kind, url in kinds.items()
                }
            finally:
                await client.aclose()
            results["compare_drawn"] = await compare_drawn(web.url, token, args.steps, args.renders)
    results["javascript"] = shipped_javascript()
    results.update(
        {
            "history_steps": args.steps,
            "compared_versions": COMPARED,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": "FerretDB (SQLite) via deploy/local/ferretdb",
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    return results


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def markdown(results: dict[str, Any]) -> str:
    pages, drawn, js = results["pages"], results["compare_drawn"], results["javascript"]
    lines = [
        "# Web UI benchmark",
        "",
        f"`make bench-web` (bench/web_bench.py), finished {results['finished_at']} on {results['cpus']} "
        f"cores shared by the stores, both gRPC services, the web service, the load generator and "
        f"Chromium. {results['versions']:,} versions in namespace `{NAMESPACE}` over {MODELS} models, plus "
        f"{results['compared_versions']} versions with `loss` and `accuracy` histories of "
        f"{results['history_steps']:,} steps each. Seeding: {results['seed']['created']:,} created, "
        f"{results['seed']['reused']:,} reused from an earlier run, {results['seed']['seconds']} s.",
        "",
        f"## Page latency on the server (target: p95 <= {P95_TARGET_MS:.0f} ms)",
        "",
        "One signed-in client, one request after another (keep-alive, loopback); time to the last byte.",
        "",
        "| page | requests | p50 ms | p95 ms | p99 ms | max ms | load 1m before/after | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in pages.items():
        lines.append(
            f"| {kind} | {row['requests']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
            f"{row['max_ms']} | {row['load_before']} / {row['load_after']} | "
            f"{verdict(row['p95_ms'] <= P95_TARGET_MS)} |"
        )
    lines += [
        "",
        f"## Compare page drawn in Chromium (target: < {DRAWN_TARGET_MS:.0f} ms)",
        "",
        f"{results['compared_versions']} versions x {results['history_steps']:,}-step histories; from the "
        f"navigation's start to the page's `{CHART_DRAWN_MARK}` mark, {drawn['renders']} renders "
        f"(headless {drawn['chromium']}): median {drawn['median_ms']} ms, max {drawn['max_ms']} ms "
        f"({', '.join(str(ms) for ms in drawn['drawn_ms'])}); load {drawn['load_before']} / "
        f"{drawn['load_after']}. {verdict(drawn['max_ms'] < DRAWN_TARGET_MS)} the target.",
        "",
        f"## JavaScript shipped (budget: {JS_BUDGET_BYTES // 1024} KB gzipped)",
        "",
        "| file | bytes | gzip -6 bytes |",
        "|---|---|---|",
    ]
    for name, entry in js["files"].items():
        lines.append(f"| {name} | {entry['bytes']:,} | {entry['gzip_bytes']:,} |")
    lines += [
        f"| **total** | {sum(e['bytes'] for e in js['files'].values()):,} | **{js['gzip_total_bytes']:,}** |",
        "",
        f"{js['gzip_total_bytes'] / 1024:.1f} KB of {JS_BUDGET_BYTES // 1024} KB: "
        f"{verdict(js['gzip_total_bytes'] <= JS_BUDGET_BYTES)} the budget.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=10_000, help="versions in the namespace")
    parser.add_argument("--requests", type=int, default=200, help="requests per page kind")
    parser.add_argument("--steps", type=int, default=5000, help="steps of each compared history")
    parser.add_argument("--renders", type=int, default=5, help="compare page renders in Chromium")
    parser.add_argument("--data", default=str(ROOT / ".data" / "bench-web"), help="the stack's data (kept)")
    parser.add_argument("--output", default=str(RESULTS), help="where web.json and web.md go")
    args = parser.parse_args()
    args.data = Path(args.data).resolve()
    results = asyncio.run(benchmark(args))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "web.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "web.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
