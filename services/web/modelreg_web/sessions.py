"""Who is signed in, kept in the browser, and the CSRF check of every change.

The service keeps no state (replicas behind a load balancer), so the session is a cookie: the
user's API token and principal, sealed with AES-GCM under the session key (authenticated and
secret: a cookie that was altered, or sealed under another key, is no session at all). The
cookie is Secure, HttpOnly and SameSite=Strict, and a credential never appears in a URL.

CSRF: a signed double submit. A random value lives in its own cookie (HttpOnly, SameSite=Strict);
every form carries HMAC(key, value) in a hidden field. A POST is accepted only when the field
matches the cookie it came with, so a page on another site, which can neither read our cookies nor
compute the HMAC, cannot make one. SameSite=Strict and the Origin check are defence in depth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "modelreg_session"
CSRF_COOKIE = "modelreg_csrf"
CSRF_FIELD = "csrf_token"
_AAD = b"modelreg-web session v1"
_FLOW_AAD = b"modelreg-web oidc flow v1"


@dataclass(frozen=True, slots=True)
class Session:
    token: str = field(repr=False)
    principal: str
    expires: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    def __init__(self, key: bytes, lifetime: int) -> None:
        self._aead = AESGCM(hashlib.sha256(b"seal\0" + key).digest())
        self._csrf_key = hashlib.sha256(b"csrf\0" + key).digest()
        self.lifetime = lifetime

    def seal(self, token: str, principal: str, not_after: int | None = None) -> str:
        """A session cookie value; it ends after `lifetime`, or at `not_after` (the token's own
        expiry) when that comes first."""
        expires = int(time.time()) + self.lifetime
        if not_after is not None:
            expires = min(expires, not_after)
        return self._seal({"t": token, "p": principal, "e": expires}, _AAD)

    def open(self, cookie: str | None) -> Session | None:
        """The session in `cookie`, or None when it is absent, altered, foreign or expired."""
        body = self._open(cookie, _AAD)
        try:
            session = Session(token=str(body["t"]), principal=str(body["p"]), expires=int(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def seal_flow(self, flow: dict[str, str], lifetime: int) -> str:
        """A sign-in in progress (modelreg_web.oidc), sealed under its own associated data so it
        can never pass for a session, nor a session for it."""
        return self._seal({**flow, "e": int(time.time()) + lifetime}, _FLOW_AAD)

    def open_flow(self, cookie: str | None) -> dict[str, Any] | None:
        body = self._open(cookie, _FLOW_AAD)
        try:
            live = int(body["e"]) > time.time()
        except (ValueError, KeyError, TypeError):
            return None
        return body if live else None

    def _seal(self, body: dict[str, Any], aad: bytes) -> str:
        nonce = secrets.token_bytes(12)
        return _b64(nonce + self._aead.encrypt(nonce, json.dumps(body).encode(), aad))

    def _open(self, cookie: str | None, aad: bytes) -> dict[str, Any]:
        if not cookie or len(cookie) > 4096:
            return {}
        try:
            raw = _unb64(cookie)
            body = json.loads(self._aead.decrypt(raw[:12], raw[12:], aad))
        except (InvalidTag, ValueError, binascii.Error):
            return {}
        return body if isinstance(body, dict) else {}

    def csrf_field(self, cookie_value: str) -> str:
        return _b64(hmac.new(self._csrf_key, cookie_value.encode(), hashlib.sha256).digest())

    def csrf_valid(self, cookie_value: str | None, submitted: str | None) -> bool:
        if not cookie_value or not submitted:
            return False
        return hmac.compare_digest(self.csrf_field(cookie_value), submitted)


def csrf_cookie_value(request: Request) -> tuple[str, bool]:
    """This browser's CSRF value, and whether it is new (then the response must set it)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(24), True


def set_cookie(
    response: Response,
    name: str,
    value: str,
    max_age: int | None,
    *,
    path: str = "/",
    samesite: Literal["strict", "lax"] = "strict",
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, secure=True, httponly=True, samesite=samesite
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
