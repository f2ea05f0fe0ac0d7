"""MLflow's side of the artifact benchmark; runs in MLflow's own environment (.tools/mlflow).

`upload FILE` logs FILE as an artifact of a new run; `download RUN_ID NAME DEST` fetches it back.
Each prints one JSON line with the seconds the transfer itself took (and for an upload, the CPU
seconds this process spent on it, all threads). Whether the transfer is
proxied through the tracking server or uses MLflow's multipart mode is chosen by the caller
through MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD / _DOWNLOAD.
"""

from __future__ import annotations

import json
import sys
import time

import mlflow


def main() -> None:
    command = sys.argv[1]
    if command == "upload":
        path = sys.argv[2]
        mlflow.set_experiment("artifact-bench")
        with mlflow.start_run() as run:
            started, cpu_started = time.perf_counter(), time.process_time()
            mlflow.log_artifact(path)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        print(json.dumps({"run_id": run.info.run_id, "seconds": seconds, "cpu_seconds": cpu_seconds}))
    elif command == "download":
        run_id, name, dest = sys.argv[2:5]
        started = time.perf_counter()
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=dest)
        print(json.dumps({"seconds": time.perf_counter() - started}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
