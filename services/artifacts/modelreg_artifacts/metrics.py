"""The artifact service's own metrics (the RPC and store metrics are modelreg_common's).

docs/observability.md lists them with the alerts built on them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ARTIFACT_BYTES = Counter(
    "modelreg_artifact_bytes",
    "File content received in uploads (direction=upload) and sent in downloads (direction=download)",
    ["direction"],
)
UPLOADED_BYTES = ARTIFACT_BYTES.labels("upload")
DOWNLOADED_BYTES = ARTIFACT_BYTES.labels("download")
UPLOAD_SESSIONS_ACTIVE = Gauge(
    "modelreg_upload_sessions_active",
    "Upload sessions receiving bytes in this process now (an open UploadFile or WriteUpload stream)",
)
UPLOAD_SESSIONS_EXPIRED = Counter(
    "modelreg_upload_sessions_expired", "Upload sessions the sweeper expired (not finished within the TTL)"
)
GC_RUNS = Counter(
    "modelreg_gc_runs",
    "Garbage collections run (by the sweeper or CollectGarbage), by dry_run and result (ok, error)",
    ["dry_run", "result"],
)
GC_DELETED_BLOBS = Counter("modelreg_gc_deleted_blobs", "Blobs garbage collection deleted")
GC_FREED_BYTES = Counter("modelreg_gc_freed_bytes", "Bytes of the blobs garbage collection deleted")
GC_LAST_SUCCESS = Gauge(
    "modelreg_gc_last_success_timestamp_seconds", "When the last garbage collection (not a dry run) succeeded"
)
for _dry_run in ("false", "true"):
    for _result in ("ok", "error"):
        GC_RUNS.labels(_dry_run, _result)
