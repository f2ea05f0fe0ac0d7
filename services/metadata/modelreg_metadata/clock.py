"""The registry's clock and etags: what every change stamps on the resource it makes.

Apart from the stores because the use cases stamp a change before any store sees it (a store
only keeps what it is given), and every store implementation must keep the same times.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def now() -> datetime:
    # MongoDB stores milliseconds; truncating here keeps what we return equal to what we read back.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_etag() -> str:
    return uuid.uuid4().hex[:16]
