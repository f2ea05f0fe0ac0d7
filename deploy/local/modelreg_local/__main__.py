"""`make run`: the whole registry on this machine, on the embedded local servers.

Starts FerretDB (on a Unix socket under `.data/`), SeaweedFS, both services and the web UI on 127.0.0.1 with
data under `.data/` (kept between runs), waits until all are healthy, prints where they are, and
stops everything on Ctrl-C, SIGINT or SIGTERM (sent to this process or to the `make` it runs under:
parent.py). A child that dies is named and restarted (supervisor.py). External stores named by
MODELREG_MONGODB_URI / MODELREG_S3_ENDPOINT are used instead of the embedded ones.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from modelreg_api.addresses import (
    ARTIFACT_ADDR_ENV,
    DEFAULT_ARTIFACT_ADDR,
    DEFAULT_METADATA_ADDR,
    METADATA_ADDR_ENV,
    ServiceAddresses,
)
from modelreg_common.observability.exposition import (
    ARTIFACT_METRICS_ADDR,
    METADATA_METRICS_ADDR,
    WEB_METRICS_ADDR,
)

from modelreg_local.parent import MakeParent
from modelreg_local.stack import LocalStack, ServiceStartError
from modelreg_local.stores import StoreConfigError, StoreStartError
from modelreg_local.supervisor import GaveUp, Supervisor

REPO_ROOT = Path(__file__).resolve().parents[3]
NO_MONGO_PORT = 0  # FerretDB on its Unix socket, reachable by this user only (docs/local-stack.md)
DEFAULT_S3_PORT = 8333
DEFAULT_WEB_ADDR = "127.0.0.1:8080"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        sys.exit(f"modelreg-local: {name}={raw!r} is not a TCP port")
    return int(raw)


def _s3_credentials(stack: LocalStack) -> str:
    """Where the local SeaweedFS's credentials are, for S3 tools (the secret is this data dir's own)."""
    assert stack.stores is not None  # noqa: S101 - set by start()
    secret_file = stack.data_root / "seaweedfs" / "s3-secret"
    try:
        local = secret_file.read_text().strip() == stack.stores.s3_secret_key
    except OSError:
        local = False
    if not local:
        return ""
    return f"\n                     access key '{stack.stores.s3_access_key}', secret key in {secret_file}"


def _metrics(stack: LocalStack) -> str:
    assert stack.metadata is not None  # noqa: S101 - set by start()
    assert stack.artifacts is not None  # noqa: S101
    urls = f"{stack.metadata.metrics_url}  {stack.artifacts.metrics_url}"
    if stack.web is not None:
        urls += f"  {stack.web.metrics_url}"
    return f"{urls}   (Prometheus: docs/observability.md)"


def _banner(stack: LocalStack) -> str:
    assert stack.stores is not None  # noqa: S101 - set by start()
    grpcurl = REPO_ROOT / ".tools" / "bin" / "grpcurl"
    grpcurl_note = "" if grpcurl.exists() else "   (build it first: make grpcurl)"
    modelreg = str(REPO_ROOT / ".venv" / "bin" / "modelreg")
    if (stack.addresses.metadata, stack.addresses.artifacts) != (
        DEFAULT_METADATA_ADDR,
        DEFAULT_ARTIFACT_ADDR,
    ):
        # The CLI defaults to the default addresses: say where this stack listens instead.
        modelreg = (
            f"{METADATA_ADDR_ENV}={stack.addresses.metadata} "
            f"{ARTIFACT_ADDR_ENV}={stack.addresses.artifacts} {modelreg}"
        )
    return f"""
modelreg is running.

  metadata service   {stack.addresses.metadata}   (gRPC, reflection on)
  artifact service   {stack.addresses.artifacts}   (gRPC, reflection on)
  web UI             http://{stack.web_address}/   (sign in with the admin credential below:
                     paste the contents of {stack.admin_token_file})
  MongoDB (FerretDB) {stack.stores.mongodb_uri}
  S3 (SeaweedFS)     http://{stack.stores.s3_endpoint}   bucket 'modelreg'{_s3_credentials(stack)}
  metrics            {_metrics(stack)}
  data               {stack.data_root}
  logs               {stack.log_dir}
  admin credential   {stack.admin_token_file}   (user:admin, mode 0600; the CLI uses it for a
                     stack on this machine when no other credential is set: docs/security.md)

Try, in another shell:
  {modelreg} models create demo/first
  {modelreg} push demo/first PATH/TO/MODEL --metric accuracy=0.9 --alias staging
  {modelreg} pull demo/first@staging ./fetched
  {modelreg} whoami
  {grpcurl} -plaintext {stack.addresses.metadata} list   (raw gRPC, by reflection){grpcurl_note}
  {grpcurl} -plaintext -H "authorization: Bearer $(cat {stack.admin_token_file})" \\
      {stack.addresses.metadata} modelregistry.v1.AccessService/GetCallerIdentity

Ctrl-C stops everything; the data stays for the next run.
"""


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    data_root = Path(os.environ.get("MODELREG_DATA_DIR") or REPO_ROOT / ".data").resolve()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    addresses = ServiceAddresses.from_environment()
    web_address = os.environ.get("MODELREG_WEB_ADDR", "").strip() or DEFAULT_WEB_ADDR
    stack = LocalStack(
        data_root,
        addresses=addresses,
        # The services' own default metrics ports with their default addresses; a stack on other
        # addresses (a second one, a test's) takes free ports, shown in the banner.
        metrics=ServiceAddresses(METADATA_METRICS_ADDR, ARTIFACT_METRICS_ADDR)
        if addresses == ServiceAddresses()
        else None,
        # A port puts FerretDB on TCP, where every local user reaches it without credentials: opt-in only.
        mongo_port=_port("MODELREG_LOCAL_MONGO_PORT", NO_MONGO_PORT),
        s3_port=_port("MODELREG_LOCAL_S3_PORT", DEFAULT_S3_PORT),
        web_address=web_address,
        web_metrics=WEB_METRICS_ADDR if web_address == DEFAULT_WEB_ADDR else None,
    )
    print(f"starting modelreg with data in {data_root} ...", flush=True)
    make = MakeParent()
    try:
        with stack:
            print(_banner(stack), flush=True)
            supervisor = Supervisor(stack.children(), report=_report, stop=stop)
            while not stop.wait(0.5):
                why = make.stopped()
                if why is not None:
                    print(f"{why}: stopping ...", flush=True)
                    break
                supervisor.check()
            print("stopping ...", flush=True)
    except GaveUp as exc:
        sys.exit(f"modelreg-local: {exc}; stopped everything")
    except (StoreStartError, StoreConfigError, ServiceStartError) as exc:
        sys.exit(f"modelreg-local: {exc}")
    print("stopped.", flush=True)


if __name__ == "__main__":
    main()
