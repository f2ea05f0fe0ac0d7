"""Client benchmark: a push and a pull of one large file with the Go client and the Python SDK.

Both clients run against one local stack (its own FerretDB + SeaweedFS in a temporary
directory), each as a process of its own that times one whole call: hashing the file, the
transfer, the service's verification (push) or the client's (pull). Runs alternate between the
clients, so both meet the same load; each run pushes different bytes (the first bytes are
rewritten) into a new model, so content addressing never skips a transfer, and pulls into an
empty directory. The Go client is `clients/go/cmd/modelreg-bench`; the Python leg is this
module's `leg` command (`AsyncClient.push` / `pull` without the blob cache, as Go's pull).

Usage: python -m bench.clients_bench [--size-mib 1024] [--runs 3] [--workdir DIR] [--print]
Writes bench/results/clients.json and bench/results/clients.md (issue 14's target: the Go
client at least as fast as the Python SDK); with --print, prints the results instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from modelreg_api.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
GO_MODULE = REPO / "clients" / "go"
MIB = 1024 * 1024
CLIENTS = ("go", "python")
OPERATIONS = ("push", "pull")
GO = shutil.which("go") or "/usr/local/go/bin/go"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


# The Python leg: one call in a process of its own, as the Go command does.


async def _python_leg(operation: str, target: str, path: str) -> dict[str, Any]:
    from modelreg import AsyncClient  # noqa: PLC0415 - only the leg process needs the SDK

    async with AsyncClient() as registry:
        start = time.perf_counter()
        if operation == "push":
            pushed = await registry.push(target, path)
            version, size = pushed.version.name, sum(f.transferred_bytes for f in pushed.files)
        else:
            pulled = await registry.pull(target, path, use_cache=False)
            version, size = pulled.version.name, pulled.received_bytes
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "bytes": size, "model_version": version, "peak_rss_mib": peak_kib / 1024}


class Bench:
    def __init__(self, stack: LocalStack, root: Path) -> None:
        self.root = root
        self.source = root / "weights.bin"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
        self.env.update(
            MODELREG_METADATA_ADDR=stack.addresses.metadata,
            MODELREG_ARTIFACT_ADDR=stack.addresses.artifacts,
            MODELREG_TOKEN=stack.admin_token(),
            MODELREG_CACHE_DIR=str(root / "python-cache"),
            GOTOOLCHAIN="local",
            GOFLAGS="-mod=readonly -buildvcs=false",
        )
        self.go_binary = root / "modelreg-bench"
        log("building the Go client's benchmark command")
        subprocess.run(
            [
                shutil.which("go") or "/usr/local/go/bin/go",
                "build",
                "-o",
                str(self.go_binary),
                "./cmd/modelreg-bench",
            ],
            cwd=GO_MODULE,
            env={**self.env, "CGO_ENABLED": "0"},
            check=True,
        )

    def _leg(self, client: str, operation: str, target: str, path: Path) -> dict[str, Any]:
        if client == "go":
            command = [str(self.go_binary), operation, target, str(path)]
        else:
            command = [sys.executable, "-m", "bench.clients_bench", "leg", operation, target, str(path)]
        result = subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, check=False, timeout=3600
        )
        if result.returncode != 0:
            raise RuntimeError(f"{client} {operation} failed: {result.stderr[-2000:]}")
        output: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        output["load"] = load()
        return output

    def run(self, size_bytes: int, runs: int) -> dict[str, Any]:
        measured: dict[str, list[dict[str, Any]]] = {
            f"{c}_{op}": [] for c in CLIENTS for op in ("push", "pull")
        }
        for number in range(runs):
            for client in CLIENTS if number % 2 == 0 else reversed(CLIENTS):
                _rewrite_head(self.source)
                model = f"bench/clients-{client}-{uuid.uuid4().hex[:8]}"
                log(f"run {number + 1}/{runs}: {client} push")
                pushed = self._leg(client, "push", model, self.source)
                measured[f"{client}_push"].append(pushed)
                dest = self.root / f"pull-{client}-{number}"
                log(f"run {number + 1}/{runs}: {client} pull")
                measured[f"{client}_pull"].append(self._leg(client, "pull", pushed["model_version"], dest))
                shutil.rmtree(dest)
        results: dict[str, Any] = {}
        for key, samples in measured.items():
            speeds = [size_bytes / s["seconds"] / 1e6 for s in samples]
            results[f"{key}_mb_s"] = round(statistics.median(speeds), 1)
            results[f"{key}_mb_s_min"] = round(min(speeds), 1)
            results[f"{key}_mb_s_max"] = round(max(speeds), 1)
            results[f"{key}_peak_rss_mib"] = round(max(s["peak_rss_mib"] for s in samples), 1)
            results[f"{key}_load"] = [s["load"] for s in samples]
        for operation in ("push", "pull"):
            results[f"go_vs_python_{operation}"] = round(
                results[f"go_{operation}_mb_s"] / results[f"python_{operation}_mb_s"], 2
            )
        return results


def _rewrite_head(source: Path) -> None:
    with source.open("r+b") as stream:
        stream.write(os.urandom(4096))


def _make_file(path: Path, size: int) -> None:
    with path.open("wb") as stream:
        for start in range(0, size, 64 * MIB):
            stream.write(os.urandom(min(64 * MIB, size - start)))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "leg":
        print(json.dumps(asyncio.run(_python_leg(sys.argv[2], sys.argv[3], sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir", default=None, help="where the stack and the files go (a temporary directory)"
    )
    parser.add_argument("--print", action="store_true", help="print the results instead of writing them")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "size_mib": args.size_mib,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_at_start": load(),
    }
    with tempfile.TemporaryDirectory(prefix="clients-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        stack = LocalStack(root / "stack", addresses=addresses, log_level="WARNING")
        log("starting FerretDB, SeaweedFS and both services")
        stack.start()
        try:
            bench = Bench(stack, root)
            log(f"writing a {args.size_mib} MiB file of random bytes")
            _make_file(bench.source, args.size_mib * MIB)
            results.update(bench.run(args.size_mib * MIB, args.runs))
        finally:
            stack.stop()
    results["load_at_end"] = load()
    if args.print:
        print(json.dumps(results, indent=2))
    else:
        write_results(results)


def write_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "clients.json").write_text(json.dumps(results, indent=2) + "\n")

    def row(client: str, label: str) -> str:
        cells = []
        for operation in ("push", "pull"):
            key = f"{client}_{operation}"
            cells.append(
                f"{results[f'{key}_mb_s']} ({results[f'{key}_mb_s_min']}-{results[f'{key}_mb_s_max']})"
            )
            cells.append(f"{results[f'{key}_peak_rss_mib']}")
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        "# Client benchmark: Go client vs Python SDK",
        "",
        f"Started {results['started']} on {results['cpus']} cores (1-minute load average "
        f"{results['load_at_start']} at start, {results['load_at_end']} at end); Python {results['python']}. "
        f"One local stack; a {results['size_mib']} MiB file pushed into a new model and pulled into an "
        f"empty directory, {results['runs']} runs per client, alternating. MB/s = 10^6 bytes/s of the "
        "whole call (hashing, transfer, verification): median (min-max). Peak RSS of the client process.",
        "",
        "| client | push MB/s | push peak RSS MiB | pull MB/s | pull peak RSS MiB |",
        "|---|---|---|---|---|",
        row("go", "Go (`clients/go`, `modelreg.Client.Push` / `Pull`)"),
        row("python", "Python SDK (`AsyncClient.push` / `pull`, no cache)"),
        "",
        f"Go / Python: push {results['go_vs_python_push']}x, pull {results['go_vs_python_pull']}x "
        "(target: >= 1).",
        "",
        "Reproduce: `make bench-clients` (`python -m bench.clients_bench`).",
        "",
    ]
    (RESULTS / "clients.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
