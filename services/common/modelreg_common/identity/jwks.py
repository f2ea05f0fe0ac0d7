"""Signing keys of trusted JWT issuers: JWKS documents read from a file or fetched over HTTPS.

Invariants
----------
- An issuer always verifies with its last good key set. A read that fails (network, HTTP
  status, size, JSON, no usable key) changes nothing but a log line; only the first load of a
  file is fatal, because a broken file at start is a configuration error, not an outage.
- Only public, asymmetric signing keys enter a set: `oct` keys (shared secrets), keys with
  private parameters, `use` other than `sig`, and keys below PyJWT's minimum size are skipped.
  PyJWK binds each key to one algorithm, so a token cannot pick how a key is used.
- While a kid's JWK document is unchanged, refreshes keep its PyJWK object, so "is this still
  a current key" is an identity test (`KeySet.holds`): the verifier's token cache relies on it
  to drop tokens whose key left the set.
- Reads run in worker threads (`asyncio.to_thread`); urllib and file I/O never block the loop.
- Loads of one issuer are serialized by a lock, and those prompted by an unknown kid are
  rate-limited, so a stream of tokens with invented kids costs the issuer one request per
  interval and concurrent tokens with a new kid wait for one fetch.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import ipaddress
import json
import math
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import structlog

log = structlog.get_logger("modelreg.identity")

MAX_JWKS_BYTES = 1024 * 1024
# JWK members that only a private key has (RFC 7518 section 6): such a key has no place in a
# published set, and PyJWT would load it as a private key, which cannot verify.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


class JwksError(ValueError):
    """A JWKS document could not be read, or holds no usable signing key."""


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jwks_url(url: str) -> None:
    """Raise ValueError unless `url` is https, or http to a loopback host (tests, a local proxy)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and is_loopback_host(host)):
        return
    raise ValueError(f"must be an https URL (http only for a loopback host such as 127.0.0.1), not {url!r}")


@dataclass(frozen=True)
class KeySet:
    """One issuer's usable verification keys."""

    by_kid: Mapping[str, jwt.PyJWK]
    # The canonical JSON of each key's JWK -> the key, to keep unchanged keys across refreshes.
    by_document: Mapping[str, jwt.PyJWK]

    def candidates(self, kid: str | None, algorithm: str) -> list[jwt.PyJWK]:
        """The keys that may have signed a token: the kid's key, or without a kid every key of
        the token's algorithm (issuers with a single key often omit kids)."""
        if kid is not None:
            key = self.by_kid.get(kid)
            return [key] if key is not None else []
        return [key for key in self.by_document.values() if key.algorithm_name == algorithm]

    def holds(self, key: jwt.PyJWK) -> bool:
        if key.key_id is not None:
            return self.by_kid.get(key.key_id) is key
        return any(current is key for current in self.by_document.values())

    @property
    def kids(self) -> list[str]:
        return sorted(self.by_kid)


EMPTY_KEY_SET = KeySet(by_kid={}, by_document={})


def parse_jwks(data: bytes, source: str, previous: KeySet = EMPTY_KEY_SET) -> tuple[KeySet, list[str]]:
    """The usable keys of a JWKS document and why the others were skipped; raise JwksError if
    the document is not a JWKS or no key is usable. Keys unchanged since `previous` are kept."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JwksError(f"{source}: not a JSON document ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f'{source}: not a JWKS (a JSON object with a "keys" list)')
    by_kid: dict[str, jwt.PyJWK] = {}
    by_document: dict[str, jwt.PyJWK] = {}
    skipped: list[str] = []
    for number, jwk in enumerate(document["keys"], start=1):
        key, reason = _usable_key(jwk, previous)
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        name = f"key {number}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")
        if key is None:
            skipped.append(f"{name}: {reason}")
            continue
        if key.key_id is not None and key.key_id in by_kid:
            skipped.append(f"{name}: an earlier key has the same kid")
            continue
        if key.key_id is not None:
            by_kid[key.key_id] = key
        by_document[_canonical(jwk)] = key
    if not by_document:
        detail = "; ".join(skipped) or "the key list is empty"
        raise JwksError(f"{source}: no usable signing key ({detail})")
    return KeySet(by_kid, by_document), skipped


def _canonical(jwk: dict[str, Any]) -> str:
    return json.dumps(jwk, sort_keys=True, separators=(",", ":"))


def _usable_key(jwk: Any, previous: KeySet) -> tuple[jwt.PyJWK | None, str]:
    """The verification key of a JWK, or None and why it cannot verify our tokens."""
    reason = _unusable_because(jwk)
    if reason is not None:
        return None, reason
    known = previous.by_document.get(_canonical(jwk))
    if known is not None:
        return known, ""
    try:
        key = jwt.PyJWK(jwk)
    except jwt.PyJWTError as exc:
        return None, f"unusable ({exc})"
    weakness = key.Algorithm.check_key_length(key.key)
    return (None, weakness) if weakness else (key, "")


def _unusable_because(jwk: Any) -> str | None:
    if not isinstance(jwk, dict):
        return "not a JSON object"
    kty, use = jwk.get("kty"), jwk.get("use", "sig")
    problems = [
        (kty not in ("RSA", "EC", "OKP"), f"key type {kty!r} is not an asymmetric signing key type"),
        (bool(_PRIVATE_MEMBERS & jwk.keys()), "holds private key material"),
        (use != "sig", f"use {use!r} is not 'sig'"),
        ("kid" in jwk and not isinstance(jwk["kid"], str), "kid is not a string"),
    ]
    return next((reason for found, reason in problems if found), None)


def read_jwks_file(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise JwksError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"{path}: larger than {MAX_JWKS_BYTES} bytes")
    return data


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the configuration itself would accept (no https -> http)."""

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_jwks_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_jwks_url(url: str, timeout_seconds: float) -> bytes:
    """GET a JWKS document (blocking: call it in a thread)."""
    request = urllib.request.Request(  # noqa: S310 (the scheme was checked by check_jwks_url)
        url, headers={"Accept": "application/json", "User-Agent": "modelreg"}
    )
    opener = urllib.request.build_opener(_CheckedRedirects)
    try:
        with opener.open(request, timeout=timeout_seconds) as response:
            data: bytes = response.read(MAX_JWKS_BYTES + 1)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise JwksError(f"{url}: cannot fetch it ({exc})") from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"{url}: larger than {MAX_JWKS_BYTES} bytes")
    return data


class IssuerKeys:
    """The key set of one issuer, read from its JWKS file or URL and kept fresh."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_file: Path | None,
        jwks_url: str | None,
        clock: Callable[[], float],
        min_refresh_seconds: float,
        fetch_timeout_seconds: float,
    ) -> None:
        if (jwks_file is None) == (jwks_url is None):
            raise ValueError("exactly one of jwks_file and jwks_url")
        self.issuer = issuer
        self.source = str(jwks_file) if jwks_file is not None else str(jwks_url)
        self.is_file = jwks_file is not None
        self.current = EMPTY_KEY_SET
        self._read: Callable[[], bytes]
        if jwks_file is not None:
            self._read = functools.partial(read_jwks_file, jwks_file)
        else:
            self._read = functools.partial(fetch_jwks_url, str(jwks_url), fetch_timeout_seconds)
        self._clock = clock
        self._min_refresh_seconds = min_refresh_seconds
        self._lock = asyncio.Lock()
        self._last_attempt = -math.inf

    async def load(self) -> None:
        """Read the JWKS now; raise JwksError (keeping the current keys) if that fails."""
        async with self._lock:
            await self._load_locked()

    async def refresh(self) -> bool:
        """Read the JWKS now; on failure keep the current keys, log why and return False."""
        async with self._lock:
            return await self._refresh_locked()

    async def refresh_for_unknown_kid(self) -> None:
        """Refresh unless a load was attempted within `min_refresh_seconds`.

        Tasks that queue here behind a refresh find it recent and return at once: they all
        look the kid up again in the set that refresh installed."""
        async with self._lock:
            now = self._clock()
            # A clock that went backwards (wall-clock step) must not block refreshes.
            if self._last_attempt <= now < self._last_attempt + self._min_refresh_seconds:
                return
            await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        try:
            await self._load_locked()
        except JwksError as exc:
            log.warning(
                "refreshing an issuer's JWKS failed; keeping its last good keys",
                issuer=self.issuer,
                error=str(exc),
                kids=self.current.kids,
            )
            return False
        return True

    async def _load_locked(self) -> None:
        self._last_attempt = self._clock()
        data = await asyncio.to_thread(self._read)
        keys, skipped = parse_jwks(data, self.source, self.current)
        if keys.by_document.keys() != self.current.by_document.keys():
            log.info(
                "loaded an issuer's JWKS",
                issuer=self.issuer,
                source=self.source,
                kids=keys.kids,
                keys_without_kid=len(keys.by_document) - len(keys.by_kid),
                added=sorted(set(keys.kids) - set(self.current.kids)),
                removed=sorted(set(self.current.kids) - set(keys.kids)),
                skipped=skipped,
            )
        self.current = keys
