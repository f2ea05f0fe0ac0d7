"""API tokens: opaque bearer credentials the registry issues and keeps only as a hash.

Format `mrt_<id>_<secret>`: the `mrt_` prefix lets secret scanners and people recognise a leaked
token; `<id>` (16 hex chars, public) finds the stored record with one `_id` read; `<secret>` is 32
random bytes (256 bits) in unpadded base64url. Only the SHA-256 of the secret is stored: with 256
random bits a fast hash is enough (no password stretching needed: nothing to guess), and the
comparison is constant-time so response times say nothing about a near miss.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "mrt_"
_TOKEN = re.compile(r"mrt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: str
    secret: str  # the whole credential, `mrt_<id>_<secret>`: shown once, never stored
    secret_sha256: str


def issue() -> IssuedToken:
    token_id = secrets.token_hex(8)
    random_part = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return IssuedToken(token_id, f"{PREFIX}{token_id}_{random_part}", digest(random_part))


def parse(credential: str) -> tuple[str, str] | None:
    """(id, secret part) of a well-formed API token, else None."""
    match = _TOKEN.fullmatch(credential)
    return (match.group(1), match.group(2)) if match else None


def digest(secret_part: str) -> str:
    return hashlib.sha256(secret_part.encode()).hexdigest()


def matches(stored_sha256: str, secret_part: str) -> bool:
    return hmac.compare_digest(stored_sha256.encode(), digest(secret_part).encode())
