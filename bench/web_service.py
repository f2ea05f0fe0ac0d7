"""The web service as the benchmark and the screenshots run it: a process of its own next to a
LocalStack (the same `WebProcess` that `make run` and the tests start), on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV
from modelreg_local.stack import LocalStack, WebProcess, web_environment
from modelreg_local.stores import free_port


@contextmanager
def web_service(stack: LocalStack, log_dir: Path) -> Iterator[WebProcess]:
    """`python -m modelreg_web` against `stack`, ready (its /readyz answers), stopped at the end."""
    address = f"127.0.0.1:{free_port()}"
    base = {
        **os.environ,
        METADATA_ADDR_ENV: stack.addresses.metadata,
        ARTIFACT_ADDR_ENV: stack.addresses.artifacts,
        "PYTHONUNBUFFERED": "1",
        "MODELREG_LOG_LEVEL": "WARNING",
    }
    web = WebProcess(
        "web", address=address, env=web_environment(base, stack.data_root, address), log_dir=log_dir
    )
    web.start()
    try:
        web.wait_healthy()
        yield web
    finally:
        web.stop()
