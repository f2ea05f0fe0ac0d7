"""Page sizes and opaque keyset page tokens shared by every List method.

A token encodes the sort key of the last item returned (never an offset), so a page stays
correct when items are inserted or deleted between calls. Tokens are bound to the query they
came from: a token reused with another parent or filter is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

from modelreg_api.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# What a key made by `encode_token` can hold: sort values ([tag, value] pairs) and ids, numbers
# that fit the stores' 64-bit integers and doubles. A client that edits a token gets
# INVALID_ARGUMENT, never a store error.
_MAX_KEY_DEPTH = 3
_INT64 = range(-(2**63), 2**63)
MAX_TOKEN_CHARS = 64 * 1024


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
    not_ours = InvalidArgument("page_token", "is not a token returned by this method")
    if len(token) > MAX_TOKEN_CHARS:
        raise not_ours
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw, parse_constant=_no_constant)
        key = payload["k"]
        fingerprint = payload["q"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise not_ours from None
    if fingerprint != _fingerprint(query) or not isinstance(key, list):
        raise InvalidArgument("page_token", "belongs to a different query; start again without a token")
    if not _storable(key, 0):
        raise not_ours
    return key


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value a token holds")


def _storable(value: Any, depth: int) -> bool:
    """Whether a token's key holds only what encode_token puts there, within the stores' range."""
    if isinstance(value, list):
        return depth < _MAX_KEY_DEPTH and all(_storable(item, depth + 1) for item in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)  # `1e999` parses as infinity
    return isinstance(value, int) and value in _INT64
