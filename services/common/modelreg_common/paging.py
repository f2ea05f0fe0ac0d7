"""Page sizes and opaque keyset page tokens shared by every List method.

A token encodes the sort key of the last item returned (never an offset), so a page stays
correct when items are inserted or deleted between calls. Tokens are bound to the query they
came from: a token reused with another parent or filter is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from modelreg_api.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", f"must not be negative, got {requested}")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_token(query: str, last_key: list[Any]) -> str:
    payload = json.dumps({"q": _fingerprint(query), "k": last_key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, query: str) -> list[Any] | None:
    """The last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        key = payload["k"]
        fingerprint = payload["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "is not a token returned by this method") from None
    if fingerprint != _fingerprint(query) or not isinstance(key, list):
        raise InvalidArgument("page_token", "belongs to a different query; start again without a token")
    return key
