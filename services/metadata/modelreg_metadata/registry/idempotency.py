"""Idempotent creates (AIP-155), and the rule that a request id is for one request.

The creates and LogMetrics hand a request key to their store, which keeps it with what the call
wrote, so a retry with the same request id gets what the first call did instead of doing it twice.

A request id is also bound to the request it first came with (as Stripe's idempotency keys are:
"keys are for one request"): `claim` records a fingerprint of the request under its key before
the call writes anything, and a later call with the same key and another fingerprint is refused
(INVALID_ARGUMENT naming `request_id`, reason REQUEST_ID_REUSED) instead of silently answering
with the first call's result, which would tell the caller its second, different request was done.
The fingerprint is recorded first and alone (a unique `_id`), so of two different requests racing
with one id exactly one goes on. A fingerprint whose call then failed stays: the same request can
still be retried, a different one under that id cannot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from modelreg_api.errors import InvalidArgument

from modelreg_metadata.store import RequestStore

REQUEST_ID_REUSED = "REQUEST_ID_REUSED"


def request_key(kind: str, scope: str, request_id: str) -> str:
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument("request_id", "must be at most 128 printable characters")
    return f"{kind} {scope} {request_id}"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def fingerprint(request: Any) -> str:
    """SHA-256 of what a request asks for: its domain value (dataclasses, maps, lists, scalars),
    serialized canonically, so equal requests have equal fingerprints."""
    text = json.dumps(_plain(request), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def claim(requests: RequestStore, key: str, request_fingerprint: str, request_id: str) -> None:
    """Binds `key` to the request's fingerprint, or refuses a different request under it."""
    if not key:
        return
    recorded = await requests.claim(key, request_fingerprint)
    if recorded != request_fingerprint:
        shown = request_id if len(request_id) <= 40 else request_id[:40] + "..."
        raise InvalidArgument(
            "request_id",
            f"{shown!r} was already used for a different request; a request id identifies one "
            "request (retry that one with it, or send this one with a new id)",
            reason=REQUEST_ID_REUSED,
        )
