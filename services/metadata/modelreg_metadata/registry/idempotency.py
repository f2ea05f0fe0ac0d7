"""The request key that makes a call idempotent on its request id (AIP-155): the creates and
LogMetrics hand it to their store, which keeps it with what the call wrote, so a retry with the
same request id gets what the first call did instead of doing it twice.
"""

from __future__ import annotations

from modelreg_api.errors import InvalidArgument


def request_key(kind: str, scope: str, request_id: str) -> str:
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument("request_id", "must be at most 128 printable characters")
    return f"{kind} {scope} {request_id}"
