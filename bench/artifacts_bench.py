"""Artifact benchmark: the artifact service against the physical limit and against MLflow.

Everything runs on one SeaweedFS (its own LocalStack in a temporary directory):
- the artifact service: a resumable session (StartUpload + WriteUpload, 1 MiB messages) and a
  DownloadFile stream written to disk;
- the `minio` SDK directly (`fput_object` / `fget_object` with its defaults): the physical limit
  for us;
- MLflow's proxied artifact upload (`mlflow server --serve-artifacts` on the same S3), plain and
  with its proxy multipart mode, when `bench/install-mlflow.sh` has installed it;
- the artifact service's peak RSS (VmHWM of a freshly restarted process) during a 1 GiB and a
  4 GiB upload;
- a version with 1,000 files of 10 KiB, uploaded 16 at a time.

Each throughput is the median of `--runs` runs, with min and max. Each run uploads different
bytes (the first bytes are rewritten), so content addressing never skips a transfer. The
client computes the SHA-256 before an upload, untimed (any verifying client must); the service
hashes and verifies on its own. The machine is shared, so the load average is recorded with
every measurement: compare runs taken at similar load.

Usage: python bench/artifacts_bench.py [--size-mib 1024] [--big-mib 4096] [--runs 3]
Writes bench/results/artifacts.json (flat keys) and bench/results/artifacts.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from minio import Minio
from modelreg.addresses import ServiceAddresses
from modelreg_local.stack import LocalStack
from modelreg_local.stores import free_port
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, metadata_service_pb2_grpc, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MLFLOW_PY = REPO / ".tools" / "mlflow" / "bin" / "python"
MLFLOW_BIN = REPO / ".tools" / "mlflow" / "bin" / "mlflow"
MIB = 1024 * 1024
MESSAGE_BYTES = 1024 * 1024
ACTOR = (("x-modelreg-actor", "bench"),)
BUCKET = "modelreg"
MLFLOW_BUCKET = "mlflow-bench"
PARTS = ("throughput", "rss", "small")
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 8 * MIB), ("grpc.max_send_message_length", 8 * MIB)]


def load() -> float:
    return os.getloadavg()[0]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load():.2f}] {message}", flush=True)


def mb_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            piece = min(left, 64 * MIB)
            out.write(os.urandom(piece))
            left -= piece


def refresh(path: Path) -> str:
    """New leading bytes (so no run can reuse a stored blob); returns the file's SHA-256."""
    with path.open("r+b") as out:
        out.write(os.urandom(64))
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(8 * MIB):
            hasher.update(piece)
    return hasher.hexdigest()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


class Registry:
    """A synchronous client of the stack's two services (the fastest Python client shape)."""

    def __init__(self, stack: LocalStack):
        self.metadata_channel = grpc.insecure_channel(stack.addresses.metadata)
        self.artifact_channel = grpc.insecure_channel(stack.addresses.artifacts, options=CHANNEL_OPTIONS)
        self.metadata = metadata_service_pb2_grpc.MetadataServiceStub(self.metadata_channel)
        self.artifacts = artifact_service_pb2_grpc.ArtifactServiceStub(self.artifact_channel)
        self.model = self.metadata.CreateModel(
            md.CreateModelRequest(
                parent="namespaces/bench", model_id=f"bench-{os.getpid()}-{time.time_ns()}"
            ),
            metadata=ACTOR,
        )

    def new_version(self) -> str:
        version = self.metadata.CreateModelVersion(
            md.CreateModelVersionRequest(parent=self.model.name, model_version=model_pb2.ModelVersion()),
            metadata=ACTOR,
        )
        return version.name

    def upload(self, version: str, path: Path, digest: str) -> float:
        size = path.stat().st_size
        started = time.perf_counter()
        session = self.artifacts.StartUpload(
            art.StartUploadRequest(
                spec=art.UploadSpec(model_version=version, path=path.name, size_bytes=size, sha256=digest)
            ),
            metadata=ACTOR,
        )

        def messages() -> Iterator[art.WriteUploadRequest]:
            yield art.WriteUploadRequest(upload_session=session.name)
            offset = 0
            with path.open("rb", buffering=0) as source:
                while data := source.read(MESSAGE_BYTES):
                    yield art.WriteUploadRequest(write_offset=offset, data=data)
                    offset += len(data)
            yield art.WriteUploadRequest(write_offset=offset, finish_write=True)

        done = self.artifacts.WriteUpload(messages(), metadata=ACTOR)
        seconds = time.perf_counter() - started
        if done.state != art.UPLOAD_STATE_FINISHED or done.blob_reused:
            raise RuntimeError(f"upload did not store new bytes: {done}")
        return seconds

    def download(self, version: str, name: str, dest: Path) -> float:
        started = time.perf_counter()
        with dest.open("wb", buffering=0) as out:
            for message in self.artifacts.DownloadFile(
                art.DownloadFileRequest(model_version=version, path=name)
            ):
                if message.data:
                    out.write(message.data)
        return time.perf_counter() - started

    def upload_small(self, version: str, index: int, data: bytes) -> None:
        spec = art.UploadSpec(
            model_version=version,
            path=f"shards/{index:04d}.bin",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        requests = [
            art.UploadFileRequest(spec=spec),
            art.UploadFileRequest(write_offset=0, data=data, finish_write=True),
        ]
        self.artifacts.UploadFile(iter(requests), metadata=ACTOR)

    def close(self) -> None:
        self.metadata_channel.close()
        self.artifact_channel.close()


class PeakRss:
    """Samples a process's VmRSS every 20 ms; VmHWM covers what sampling might miss."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self._status("VmRSS"))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self._status("VmHWM"))

    @property
    def mib(self) -> float:
        return self.peak_kib / 1024


class MLflowServer:
    def __init__(self, root: Path, s3_endpoint: str, access_key: str, secret_key: str):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": f"http://{s3_endpoint}",
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_TRACKING_URI": self.uri,
        }
        self._log = (root / "mlflow.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(MLFLOW_BIN),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                f"s3://{MLFLOW_BUCKET}/artifacts",
            ],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        deadline = time.monotonic() + 300  # a loaded machine takes minutes to import MLflow
        while time.monotonic() < deadline:
            try:
                import urllib.request  # noqa: PLC0415 - only the MLflow part needs it

                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:  # noqa: S310 - local URL
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not start; see {root / 'mlflow.log'}")

    def run(self, *args: str, multipart: bool) -> dict[str, Any]:
        env = {
            **self.env,
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true" if multipart else "false",
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true" if multipart else "false",
        }
        out = subprocess.run(
            [str(MLFLOW_PY), str(REPO / "bench" / "mlflow_client.py"), *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def measure_rounds(
    runs: int, paths: dict[str, Callable[[int], tuple[float, float]]], size: int
) -> dict[str, Any]:
    """Each round runs every path once; returns per path the upload/download summaries."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"upload": [], "download": [], "load": []} for name in paths
    }
    for i in range(runs):
        for name, once in paths.items():
            samples[name]["load"].append(load())
            try:
                upload_s, download_s = once(i)
            except subprocess.CalledProcessError as exc:
                log(f"{name} failed: {exc.stderr[-500:]}")
                continue
            samples[name]["upload"].append(mb_s(size, upload_s))
            samples[name]["download"].append(mb_s(size, download_s))
            log(
                f"round {i + 1} {name}: upload {samples[name]['upload'][-1]:.0f} MB/s, "
                f"download {samples[name]['download'][-1]:.0f} MB/s"
            )
    results: dict[str, Any] = {}
    for name, values in samples.items():
        if values["upload"]:
            results[name] = {key: summary(series) for key, series in values.items()}
        else:
            results[name] = {"error": "every run failed; see the log"}
    if samples["service"]["upload"] and len(samples["service"]["upload"]) == len(samples["direct"]["upload"]):
        results["round_ratios"] = {
            direction: [
                s / d
                for s, d in zip(samples["service"][direction], samples["direct"][direction], strict=True)
            ]
            for direction in ("upload", "download")
        }
    return results


class Bench:
    """One stack, its S3 client and a registry client, shared by the parts of a run."""

    def __init__(self, stack: LocalStack, root: Path, args: argparse.Namespace):
        if stack.stores is None or stack.artifacts is None:
            raise RuntimeError("the stack did not start")
        self.stack = stack
        self.artifacts = stack.artifacts
        self.s3 = stack.stores.s3
        self.root = root
        self.args = args
        self.minio = Minio(
            self.s3.endpoint,
            access_key=self.s3.access_key,
            secret_key=self.s3.secret_key,
            secure=False,
            region=self.s3.region,
        )
        self.registry = Registry(stack)
        self.source = root / "model.bin"
        self.fetched = root / "fetched.bin"

    def close(self) -> None:
        self.registry.close()

    def direct(self, i: int) -> tuple[float, float]:
        refresh(self.source)
        key = f"direct/run-{i}"
        started = time.perf_counter()
        self.minio.fput_object(BUCKET, key, str(self.source))
        upload_s = time.perf_counter() - started
        started = time.perf_counter()
        self.minio.fget_object(BUCKET, key, str(self.fetched))
        download_s = time.perf_counter() - started
        self.fetched.unlink()
        self.minio.remove_object(BUCKET, key)
        return upload_s, download_s

    def service(self, i: int) -> tuple[float, float]:
        digest = refresh(self.source)
        version = self.registry.new_version()
        upload_s = self.registry.upload(version, self.source, digest)
        download_s = self.registry.download(version, self.source.name, self.fetched)
        if self.fetched.stat().st_size != self.source.stat().st_size:
            raise RuntimeError("the download is incomplete")
        self.fetched.unlink()
        return upload_s, download_s

    def throughput(self) -> dict[str, Any]:
        """Rounds interleave the paths, so each comparison is made under the same load (the
        machine is shared): round i runs every path once, back to back."""
        paths: dict[str, Callable[[int], tuple[float, float]]] = {
            "direct": self.direct,
            "service": self.service,
        }
        server: MLflowServer | None = None
        if not self.args.skip_mlflow and MLFLOW_BIN.exists():
            if not self.minio.bucket_exists(MLFLOW_BUCKET):
                self.minio.make_bucket(MLFLOW_BUCKET)
            log("starting mlflow server --serve-artifacts")
            server = MLflowServer(self.root, self.s3.endpoint, self.s3.access_key, self.s3.secret_key)
            for mode, multipart in (("proxied", False), ("multipart", True)):

                def mlflow_once(
                    i: int, server: MLflowServer = server, multipart: bool = multipart
                ) -> tuple[float, float]:
                    refresh(self.source)
                    up = server.run("upload", str(self.source), multipart=multipart)
                    dest = self.root / "mlflow-fetched"
                    down = server.run(
                        "download", up["run_id"], self.source.name, str(dest), multipart=multipart
                    )
                    shutil.rmtree(dest)
                    return float(up["seconds"]), float(down["seconds"])

                paths[f"mlflow_{mode}"] = mlflow_once
        try:
            return measure_rounds(self.args.runs, paths, self.args.size_mib * MIB)
        finally:
            if server is not None:
                server.stop()

    def peak_rss(self) -> dict[str, Any]:
        """The service's peak RSS during one upload of each size, each from a fresh process."""
        results: dict[str, Any] = {}
        for label, mib in (("1gib", 1024), ("4gib", self.args.big_mib)):
            self.artifacts.restart()
            self.registry.close()
            self.registry = Registry(self.stack)
            big = self.source if mib == self.args.size_mib else self.root / "big.bin"
            if big != self.source:
                log(f"writing a {mib} MiB file of random bytes")
                make_file(big, mib * MIB)
            digest = refresh(big)
            with PeakRss(self.artifacts.pid or 0) as rss:
                seconds = self.registry.upload(self.registry.new_version(), big, digest)
            results[f"rss_{label}"] = {
                "peak_mib": rss.mib,
                "upload_mb_s": mb_s(mib * MIB, seconds),
                "load": load(),
            }
            log(
                f"peak RSS during a {mib} MiB upload: {rss.mib:.0f} MiB ({mb_s(mib * MIB, seconds):.0f} MB/s)"
            )
            if big != self.source:
                big.unlink()
        return results

    def small_files(self) -> dict[str, Any]:
        args = self.args
        version = self.registry.new_version()
        files = [os.urandom(args.small_kib * 1024) for _ in range(args.small_files)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.small_concurrency) as pool:
            list(pool.map(lambda item: self.registry.upload_small(version, *item), enumerate(files)))
        small_s = time.perf_counter() - started
        listed = self.registry.metadata.GetModelVersion(md.GetModelVersionRequest(name=version))
        if len(listed.files) != args.small_files:
            raise RuntimeError(f"{len(listed.files)} of {args.small_files} small files recorded")
        log(f"{args.small_files} files of {args.small_kib} KiB: {small_s:.2f} s")
        return {
            "small_files": {
                "seconds": small_s,
                "files_per_s": args.small_files / small_s,
                "count": args.small_files,
                "kib": args.small_kib,
                "concurrency": args.small_concurrency,
                "load": load(),
            }
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--big-mib", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=10)
    parser.add_argument("--small-concurrency", type=int, default=16)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all); "
        "bench/results/ is written only when every part ran, otherwise the results are printed",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the data (default: a temp dir)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not only <= set(PARTS):
        parser.error(f"--only takes {', '.join(PARTS)}")

    results: dict[str, Any] = {
        "file_mib": args.size_mib,
        "big_file_mib": args.big_mib,
        "runs": args.runs,
        "message_kib": MESSAGE_BYTES // 1024,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_at_start": load(),
    }
    with tempfile.TemporaryDirectory(prefix="artifact-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        addresses = ServiceAddresses(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        stack = LocalStack(root / "stack", addresses=addresses, log_level="WARNING")
        log("starting FerretDB, SeaweedFS and both services")
        stack.start()
        try:
            bench = Bench(stack, root, args)
            if only & {"throughput", "rss"}:
                log(f"writing a {args.size_mib} MiB file of random bytes")
                make_file(bench.source, args.size_mib * MIB)
            if "throughput" in only:
                results.update(bench.throughput())
            if "rss" in only:
                results.update(bench.peak_rss())
            if "small" in only:
                results.update(bench.small_files())
            bench.close()
        finally:
            stack.stop()

    results["load_at_end"] = load()
    if only == set(PARTS):
        write_results(results, args)
    else:
        print(json.dumps(results, indent=2))


def write_results(results: dict[str, Any], args: argparse.Namespace) -> None:
    def median(key: str, direction: str) -> float | None:
        entry = results.get(key, {})
        return round(entry[direction]["median"], 1) if direction in entry else None

    mlflow_up = [v for v in (median("mlflow_proxied", "upload"), median("mlflow_multipart", "upload")) if v]
    mlflow_down = [
        v for v in (median("mlflow_proxied", "download"), median("mlflow_multipart", "download")) if v
    ]
    flat: dict[str, Any] = {
        "upload_mb_s": median("service", "upload"),
        "download_mb_s": median("service", "download"),
        "direct_upload_mb_s": median("direct", "upload"),
        "direct_download_mb_s": median("direct", "download"),
        "mlflow_upload_mb_s": max(mlflow_up) if mlflow_up else None,
        "mlflow_download_mb_s": max(mlflow_down) if mlflow_down else None,
        "mlflow_proxied_upload_mb_s": median("mlflow_proxied", "upload"),
        "mlflow_proxied_download_mb_s": median("mlflow_proxied", "download"),
        "mlflow_multipart_upload_mb_s": median("mlflow_multipart", "upload"),
        "mlflow_multipart_download_mb_s": median("mlflow_multipart", "download"),
        "service_peak_rss_mib_1gib": round(results["rss_1gib"]["peak_mib"], 1),
        "service_peak_rss_mib_4gib": round(results["rss_4gib"]["peak_mib"], 1),
        "small_files_1000_s": round(results["small_files"]["seconds"], 2),
    }
    if flat["upload_mb_s"] and flat["direct_upload_mb_s"]:
        flat["upload_ratio_to_direct"] = round(flat["upload_mb_s"] / flat["direct_upload_mb_s"], 2)
        flat["download_ratio_to_direct"] = round(flat["download_mb_s"] / flat["direct_download_mb_s"], 2)
    for direction, ratios in results.get("round_ratios", {}).items():
        # Service / direct within each round (same load), then the median over rounds.
        flat[f"{direction}_ratio_to_direct_by_round"] = round(statistics.median(ratios), 2)
    for key in ("service", "direct", "mlflow_proxied", "mlflow_multipart"):
        for direction in ("upload", "download"):
            entry = results.get(key, {}).get(direction)
            if entry:
                flat[f"{key}_{direction}_mb_s_min"] = round(entry["min"], 1)
                flat[f"{key}_{direction}_mb_s_max"] = round(entry["max"], 1)
    for key in ("file_mib", "big_file_mib", "runs", "message_kib", "cpus", "python", "started"):
        flat[key] = results[key]
    flat["load_at_start"] = round(results["load_at_start"], 2)
    flat["load_at_end"] = round(results["load_at_end"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "artifacts.json").write_text(json.dumps(flat, indent=2) + "\n")
    (args.out / "artifacts-raw.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "artifacts.md").write_text(markdown(results, flat))
    print(json.dumps(flat, indent=2))


def markdown(results: dict[str, Any], flat: dict[str, Any]) -> str:
    def cell(key: str, direction: str) -> str:
        entry = results.get(key, {})
        if "error" in entry:
            return "failed"
        if direction not in entry:
            return "not run"
        s = entry[direction]
        return f"{s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f})"

    small = results["small_files"]
    rows = [
        ("artifact service (resumable session, 1 MiB messages)", "service"),
        ("minio SDK direct (`fput_object` / `fget_object`)", "direct"),
        ("MLflow 3.17.2 proxied (`--serve-artifacts`)", "mlflow_proxied"),
        ("MLflow 3.17.2 proxy multipart mode", "mlflow_multipart"),
    ]
    lines = [
        "# Artifact service benchmark",
        "",
        f"Started {results['started']} on {results['cpus']} cores shared with other engineers' test stacks "
        f"(1-minute load average {flat['load_at_start']} at start, {flat['load_at_end']} at end); "
        f"Python {results['python']}. One SeaweedFS for everything. "
        f"Throughput of a {results['file_mib']} MiB file in MB/s (10^6 bytes/s): median of "
        f"{results['runs']} runs (min-max).",
        "",
        "| path | upload MB/s | download MB/s | load during runs |",
        "|---|---|---|---|",
    ]
    for label, key in rows:
        load_s = results.get(key, {}).get("load")
        load_text = f"{load_s['min']:.1f}-{load_s['max']:.1f}" if load_s else ""
        lines.append(f"| {label} | {cell(key, 'upload')} | {cell(key, 'download')} | {load_text} |")
    lines += [
        "",
        f"Service / direct: upload {flat.get('upload_ratio_to_direct')}x, "
        f"download {flat.get('download_ratio_to_direct')}x (target >= 0.75x); the same ratio taken "
        f"within each round (paths run back to back, so under the same load), median over rounds: "
        f"upload {flat.get('upload_ratio_to_direct_by_round')}x, "
        f"download {flat.get('download_ratio_to_direct_by_round')}x.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| artifact service peak RSS, 1 GiB upload | {flat['service_peak_rss_mib_1gib']} MiB "
        f"({results['rss_1gib']['upload_mb_s']:.0f} MB/s) |",
        f"| artifact service peak RSS, {results['big_file_mib']} MiB upload | "
        f"{flat['service_peak_rss_mib_4gib']} MiB "
        f"({results['rss_4gib']['upload_mb_s']:.0f} MB/s) |",
        f"| {small['count']:,} files of {small['kib']} KiB into one version, "
        f"{small['concurrency']} at a time | {flat['small_files_1000_s']} s "
        f"({small['files_per_s']:.0f} files/s) |",
        "",
        "Peak RSS is the larger of VmHWM and 20 ms VmRSS samples of a freshly restarted service process.",
        "MLflow's proxy multipart mode sends the parts from the client straight to S3 on presigned URLs:",
        "its server never sees (nor checks) the bytes. The like-for-like comparison is the proxied mode.",
        "On upload SeaweedFS itself needs about 11-14 CPU-seconds per GiB on this machine, so a path",
        "with one more hop through a verifying service cannot match a direct one on 2 shared cores.",
        "Each run uploads different bytes, so no transfer is skipped by content addressing.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
