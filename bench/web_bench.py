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
  page kind `--requests` times one after another (fewer, but at least 20, when a kind takes longer
  than `--max-seconds`), after 5 warm-up requests. Two times per request: the service's own
  `Server-Timing: app;dur` (arrival to first byte) and the client's, from sending the request to
  the last byte of the response (the server's time plus a loopback round trip). The HTTP client
  is tests/web/browser.py's (it keeps the UI's Secure cookies over loopback http). Page kinds:
  home, namespace (first page of the models), model (a page of versions with picked columns),
  version, compare (10 versions), audit (first page of the trail), and the JSON the version and
  compare pages fetch for their charts once shown (one 5,000-step history; ten of them).
- Compare drawn: Chromium (Debian's, headless) signed in, navigates to the compare page of the
  10 history versions `--renders` times (a fresh page each time, HTTP cache warm after the first)
  and reads the time from the navigation's start to the chart's `modelreg:chart-drawn`
  performance mark when the page sets one; otherwise to the first animation frame in which all
  10 lines exist (a predicate Playwright evaluates once per frame from the navigation's commit
  on). The results say which.
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
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

from bench.web_seed import Seeder
from bench.web_service import web_service
from tests.chromium import chromium_path, signed_in_context
from tests.web.browser import Browser

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NAMESPACE = "bench-web"
MODELS = 10
COMPARED = 10
WARMUP = 5
MIN_REQUESTS = 20
P95_TARGET_MS = 150.0
DRAWN_TARGET_MS = 1000.0
JS_BUDGET_BYTES = 300 * 1024
CHART_DRAWN_MARK = "modelreg:chart-drawn"
SERVER_TIMING = re.compile(r"\bapp;dur=([0-9.]+)")
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

    histories = f"{model}/{history_model(steps)}"
    return {
        "home": lambda i: "/",
        "namespace": lambda i: f"/n/{NAMESPACE}",
        "model": lambda i: f"{model}/model-{i % MODELS}?columns={COLUMNS}",
        "version": version,
        "compare": lambda i: f"{histories}/compare?{compared}&metric=loss",
        "audit": lambda i: "/audit",
        # The chart data the version and compare pages fetch once they are shown (JSON).
        "version history data": lambda i: f"{histories}/v/{1 + i % COMPARED}/history?metric=loss",
        "compare history data": lambda i: f"{histories}/compare/history?{compared}&metric=loss",
    }


def server_time_ms(header: str) -> float | None:
    """`app;dur=12.3` of the Server-Timing header (arrival to first byte, as the service measures)."""
    found = SERVER_TIMING.search(header)
    return float(found.group(1)) if found else None


def page_latency(
    client: Browser, url: Callable[[int], str], requests: int, max_seconds: float
) -> dict[str, Any]:
    for i in range(WARMUP):
        if (status := client.get(url(i)).status_code) != 200:
            raise RuntimeError(f"GET {url(i)}: HTTP {status}")
    before = load()
    total: list[float] = []
    server: list[float] = []
    ends = time.monotonic() + max_seconds
    for i in range(requests):
        if i >= MIN_REQUESTS and time.monotonic() > ends:
            break  # a slow page kind: fewer samples, said in the results
        started = time.perf_counter()
        reply = client.get(url(i))
        total.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"GET {url(i)}: HTTP {reply.status_code}")
        if (measured := server_time_ms(reply.headers.get("server-timing", ""))) is not None:
            server.append(measured)
    row: dict[str, Any] = {"requests": len(total), "load_before": before, "load_after": load()}
    for name, samples in (("", total), ("server_", server)):
        if samples:
            row |= {f"{name}{q}_ms": percentile(samples, int(q[1:])) for q in ("p50", "p95", "p99")}
            row[f"{name}max_ms"] = round(max(samples), 2)
    return row


# Without the page's own mark: the first animation frame in which the 10 lines exist (Playwright
# evaluates a `raf`-polled predicate once per frame, from the navigation's commit on).
LINES_DRAWN = """() => document.querySelectorAll('[data-testid="chart-compare-chart"] polyline').length >= %d
    ? performance.now() : false"""


async def compare_drawn(base_url: str, token: str, steps: int, renders: int) -> dict[str, Any]:
    """Milliseconds from navigation start to the compare chart drawn, per render."""
    from playwright.async_api import async_playwright  # noqa: PLC0415  (only this part needs it)

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium: run `make chromium` or set CHROMIUM_PATH")
    versions = "&".join(f"v={n}" for n in range(1, COMPARED + 1))
    url = f"/n/{NAMESPACE}/m/{history_model(steps)}/compare?{versions}&metric=loss"
    before = load()
    drawn: list[float] = []
    methods: set[str] = set()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        context = await signed_in_context(browser, base_url, token)
        for _ in range(renders):
            page = await context.new_page()
            await page.goto(url, wait_until="commit")
            frame = await page.wait_for_function(LINES_DRAWN % COMPARED, polling="raf", timeout=60_000)
            first_frame = float(await frame.json_value())
            marks = await page.evaluate(
                f"performance.getEntriesByName({CHART_DRAWN_MARK!r}).map(e => e.startTime)"
            )
            if marks:
                drawn.append(float(marks[0]))
                methods.add(f"the page's {CHART_DRAWN_MARK} mark")
            else:
                drawn.append(first_frame)
                methods.add("the first animation frame with every line in the chart")
            await page.close()
        await browser.close()
    return {
        "renders": renders,
        "drawn_ms": [round(ms, 1) for ms in drawn],
        "median_ms": round(statistics.median(drawn), 1),
        "max_ms": round(max(drawn), 1),
        "measured_to": sorted(methods),
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


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    data: Path = args.data
    addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    results: dict[str, Any] = {}
    with LocalStack(data, addresses=addresses, log_level="WARNING") as stack:
        token = stack.admin_token()
        results["seed"] = asyncio.run(seed(args, addresses, token))
        with web_service(stack, data / "logs") as web:
            client = Browser(web.url)
            try:
                if client.sign_in(token).status_code != 303:
                    raise RuntimeError("the web service refused the admin token at /signin")
                kinds = page_kinds(results["seed"]["versions_per_model"], args.steps)
                results["pages"] = {
                    kind: page_latency(client, url, args.requests, args.max_seconds)
                    for kind, url in kinds.items()
                }
            finally:
                client.close()
            results["compare_drawn"] = asyncio.run(compare_drawn(web.url, token, args.steps, args.renders))
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


async def seed(args: argparse.Namespace, addresses: ServiceAddresses, token: str) -> dict[str, Any]:
    seeder = Seeder(addresses.metadata, addresses.artifacts, token)
    try:
        started, before = time.monotonic(), load()
        created = await seeder.bench_namespace(NAMESPACE, args.versions, models=MODELS)
        await seeder.history_model(NAMESPACE, history_model(args.steps), versions=COMPARED, steps=args.steps)
        present = sum(await seeder.version_counts(NAMESPACE, MODELS))
    finally:
        await seeder.close()
    return {
        "versions": present,
        "versions_per_model": present // MODELS,
        "created": created,
        "reused": present - created,
        "seconds": round(time.monotonic() - started, 1),
        "load_before": before,
        "load_after": load(),
    }


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def markdown(results: dict[str, Any]) -> str:
    pages, drawn, js = results["pages"], results["compare_drawn"], results["javascript"]
    lines = [
        "# Web UI benchmark",
        "",
        f"`make bench-web` (bench/web_bench.py), finished {results['finished_at']} on {results['cpus']} "
        f"cores shared by the stores, both gRPC services, the web service, the load generator and "
        f"Chromium. {results['seed']['versions']:,} versions in namespace `{NAMESPACE}` over {MODELS} "
        f"models, plus "
        f"{results['compared_versions']} versions with `loss` and `accuracy` histories of "
        f"{results['history_steps']:,} steps each. Seeding: {results['seed']['created']:,} created, "
        f"{results['seed']['reused']:,} reused from an earlier run, {results['seed']['seconds']} s.",
        "",
        f"## Page latency (target: p95 <= {P95_TARGET_MS:.0f} ms on the server)",
        "",
        "One signed-in client, one request after another (keep-alive, loopback). *server*: the "
        "service's own `Server-Timing: app;dur` (arrival to first byte); *client*: request sent to "
        "last byte received, in the load generator.",
        "",
        "| page | requests | server p50 / p95 / p99 ms | client p50 / p95 / p99 / max ms "
        "| load 1m before/after | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in pages.items():
        server = (
            f"{row['server_p50_ms']} / {row['server_p95_ms']} / {row['server_p99_ms']}"
            if "server_p95_ms" in row
            else "not reported"
        )
        judged = row.get("server_p95_ms", row["p95_ms"])
        lines.append(
            f"| {kind} | {row['requests']} | {server} | {row['p50_ms']} / {row['p95_ms']} / "
            f"{row['p99_ms']} / {row['max_ms']} | {row['load_before']} / {row['load_after']} | "
            f"{'(chart data)' if kind.endswith(' data') else verdict(judged <= P95_TARGET_MS)} |"
        )
    lines += [
        "",
        "The *history data* rows are the JSON requests the version and compare pages make for their "
        "charts once they are shown (pages never wait for metric histories); what a person waits for "
        "on the compare page, page and data and drawing, is the next section.",
    ]
    lines += [
        "",
        f"## Compare page drawn in Chromium (target: < {DRAWN_TARGET_MS:.0f} ms)",
        "",
        f"{results['compared_versions']} versions x {results['history_steps']:,}-step histories; from the "
        f"navigation's start to {' / '.join(drawn['measured_to'])}, {drawn['renders']} renders "
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
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="per page kind: stop early (after 20 requests)"
    )
    parser.add_argument("--steps", type=int, default=5000, help="steps of each compared history")
    parser.add_argument("--renders", type=int, default=5, help="compare page renders in Chromium")
    parser.add_argument("--data", default=str(ROOT / ".data" / "bench-web"), help="the stack's data (kept)")
    parser.add_argument("--output", default=str(RESULTS), help="where web.json and web.md go")
    args = parser.parse_args()
    args.data = Path(args.data).resolve()
    results = benchmark(args)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "web.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "web.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
