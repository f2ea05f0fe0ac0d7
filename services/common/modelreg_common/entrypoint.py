"""The `main()` shared by every service: settings, tracing, logging, run, and exit codes.

Exit 2 for invalid configuration (found in the settings, the OTEL_* variables, or while starting:
a file they name does not hold what it should), 1 when the listen or metrics address is taken.
Tracing is set up before anything else (observability/tracing.py: database clients and channels
pick it up when they are created) and flushed after the service stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import structlog

from modelreg_common.config import ConfigError
from modelreg_common.logging import configure_logging
from modelreg_common.observability.tracing import configure_tracing
from modelreg_common.server import BindError


class _Settings(Protocol):
    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=_Settings)


def run_service(
    program: str,
    load: Callable[[Mapping[str, str]], S],
    run: Callable[[S], Coroutine[Any, Any, None]],
) -> None:
    try:
        settings = load(os.environ)
        tracing = configure_tracing(os.environ, program)
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201 - logging is not configured yet
        sys.exit(2)
    configure_logging(settings.log_level, trace_ids=tracing.enabled)
    structlog.get_logger("modelreg.tracing").info(
        "traces exported" if tracing.enabled else "tracing off", exporters=tracing.exporters
    )
    try:
        asyncio.run(run(settings))
    except ConfigError as exc:  # found while starting (e.g. an unreadable JWKS file)
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    except BindError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(1)
    finally:
        tracing.shutdown()
