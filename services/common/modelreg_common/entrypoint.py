"""The `main()` shared by every service: settings, logging, run, and exit codes.

Exit 2 for invalid configuration (found in the settings, or while starting: a file they name
does not hold what it should), 1 when the listen address is taken.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from modelreg_common.config import ConfigError
from modelreg_common.logging import configure_logging
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
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201 - logging is not configured yet
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        asyncio.run(run(settings))
    except ConfigError as exc:  # found while starting (e.g. an unreadable JWKS file)
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    except BindError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(1)
