"""structlog configured for one JSON object per line, with contextvars (request id, method), and
the current span's trace_id/span_id when tracing is on."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from modelreg_common.observability.tracing import add_trace_ids


def configure_logging(level: str = "INFO", *, trace_ids: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    spans: list[Processor] = [add_trace_ids] if trace_ids else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *spans,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
