"""Retrying an operation that failed because a service was unavailable."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelreg.errors import Unavailable
from modelreg.settings import RetryPolicy

T = TypeVar("T")


async def with_retries(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    *,
    on_retry: Callable[[Unavailable, float], None] | None = None,
) -> T:
    """Run `operation` until it succeeds, fails otherwise, or `policy.attempts` are spent.

    Only `Unavailable` is retried: any other status is an answer, and repeating the call would
    get the same answer. Full jitter keeps many clients restarting after an outage from
    arriving in lockstep.
    """
    attempt = 1
    while True:
        try:
            return await operation()
        except Unavailable as exc:
            if attempt >= policy.attempts:
                raise
            delay = random.uniform(0, policy.backoff(attempt))  # noqa: S311 - jitter, not security
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
            attempt += 1
