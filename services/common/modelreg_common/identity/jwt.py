"""Verify OIDC and Kubernetes service-account JWTs, and map them to principals.

What a token must show, in the order it is checked
--------------------------------------------------
1. Shape: a compact JWS (three base64url parts, at most 8 KiB) whose header and payload are
   JSON objects.
2. Issuer: the unverified `iss` picks one configured issuer by exact match. Nothing else in the
   token is trusted yet; `iss` only decides which keys and rules apply, and the signature then
   proves it, because only that issuer's keys are tried.
3. Algorithm: the header's `alg` must be in the issuer's list, which can only hold asymmetric
   algorithms (`none` and HS* are refused when the configuration is built). Each key is bound to
   one algorithm, so an RSA public key can never serve as an HMAC secret.
4. Key: by `kid` in the issuer's JWKS. An unknown kid triggers one rate-limited refresh of the
   set: that is how rotation reaches us before the periodic refresh.
5. Signature (PyJWT's algorithms over `cryptography`).
6. Claims, only after the signature, so a forged token learns nothing from them: `exp` is
   required; `exp`, `nbf` and `iat` are checked with the leeway; `aud` must hold one of the
   issuer's audiences; then the principal and groups claims.

A rejection carries a short `problem` code and a one-line message safe to return to the
caller: values taken from the token are cut to 32 characters.

Verified tokens are cached by the SHA-256 of the token, bounded, LRU: a hot client costs a hash
and a dict lookup. A hit is still checked against the clock and against the issuer's current key
set, so an expired token, or one whose key left the JWKS, fails exactly as it would uncached.

No secret is compared here with `==`: signatures are checked by `cryptography`, and the cache is
keyed by a digest, whose lookup time says nothing usable about any token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jwt
import structlog

from modelreg_common.identity.jwks import IssuerKeys, JwksError, check_jwks_url

log = structlog.get_logger("modelreg.identity")

MAX_TOKEN_CHARS = 8192
SUPPORTED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# OpenID Connect caps `sub` at 255 ASCII characters; the same bound holds any principal we build.
MAX_CLAIM_CHARS = 255
# Principals a token may never claim: groups exist only in bindings, services are internal.
_TOKEN_PRINCIPAL_PREFIXES = ("user:", "serviceaccount:")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Kubernetes namespaces are DNS labels, service-account names DNS subdomains.
_SERVICE_ACCOUNT_SUBJECT = re.compile(
    r"system:serviceaccount:([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)"
)
_SHOWN_CHARS = 32

JwtProblem = Literal[
    "malformed",
    "unknown_issuer",
    "unknown_key",
    "invalid_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "missing_claim",
    "unsupported_algorithm",
]


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer: whose tokens are accepted, for which audiences, as which principal."""

    issuer: str  # the exact `iss` value
    audiences: tuple[str, ...]  # `aud` must contain at least one of them
    jwks_file: Path | None = None  # exactly one of jwks_file / jwks_url
    jwks_url: str | None = None  # https, or http to a loopback host
    principal_claim: str = "sub"
    principal_prefix: str = "user:"  # principal = prefix + the claim's value
    groups_claim: str = "groups"  # a list of strings -> ("group:<g>", ...); absent -> ()
    # `sub` system:serviceaccount:<ns>:<name> -> serviceaccount:<ns>/<name>; any other sub is refused.
    kubernetes: bool = False
    algorithms: tuple[str, ...] = ("RS256", "ES256")

    def __post_init__(self) -> None:
        if not _is_text(self.issuer) or self.issuer != self.issuer.strip():
            raise ValueError("field 'issuer': must be a non-empty string without surrounding spaces")
        if not _is_text_tuple(self.audiences):
            raise ValueError("field 'audiences': must list at least one audience (non-empty strings)")
        self._check_jwks_source()
        self._check_principal_mapping()
        if not _is_text_tuple(self.algorithms):
            raise ValueError("field 'algorithms': must list at least one algorithm")
        for algorithm in self.algorithms:
            if algorithm not in SUPPORTED_ALGORITHMS:
                raise ValueError(
                    f"field 'algorithms': {algorithm!r} is not accepted; use any of "
                    f"{', '.join(SUPPORTED_ALGORITHMS)} (HMAC and 'none' are refused: "
                    "anyone holding the issuer's public key could sign)"
                )

    def _check_jwks_source(self) -> None:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("fields 'jwks_file' and 'jwks_url': set exactly one of them")
        if self.jwks_file is not None and not isinstance(self.jwks_file, Path):
            raise ValueError("field 'jwks_file': must be a path")
        if self.jwks_url is not None:
            if not isinstance(self.jwks_url, str):
                raise ValueError("field 'jwks_url': must be a string")
            try:
                check_jwks_url(self.jwks_url)
            except ValueError as exc:
                raise ValueError(f"field 'jwks_url': {exc}") from None

    def _check_principal_mapping(self) -> None:
        for name in ("principal_claim", "groups_claim"):
            if not _is_text(getattr(self, name)):
                raise ValueError(f"field {name!r}: must be a non-empty string")
        if not isinstance(self.principal_prefix, str) or not self.principal_prefix.startswith(
            _TOKEN_PRINCIPAL_PREFIXES
        ):
            raise ValueError(
                "field 'principal_prefix': must start with 'user:' or 'serviceaccount:' "
                "(group: and service: principals cannot come from a token)"
            )
        if not isinstance(self.kubernetes, bool):
            raise ValueError("field 'kubernetes': must be true or false")
        if self.kubernetes and (self.principal_claim != "sub" or self.principal_prefix != "user:"):
            raise ValueError(
                "field 'kubernetes': a Kubernetes issuer maps 'sub' to serviceaccount:<namespace>/<name>, "
                "so 'principal_claim' and 'principal_prefix' do not apply; remove them"
            )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_text_tuple(value: object) -> bool:
    return isinstance(value, tuple) and bool(value) and all(_is_text(item) for item in value)


def load_issuers(path: Path) -> list[IssuerConfig]:
    """Read the trusted issuers from a JSON file: a list of objects with IssuerConfig's fields
    (`jwks_file` relative to the file's directory). Raise ValueError naming the entry and the
    field on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the JWT issuer configuration {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, list):
        raise ValueError(f"{path}: must hold a JSON list of issuer objects, not {_json_type(document)}")
    issuers: list[IssuerConfig] = []
    entries_by_issuer: dict[str, int] = {}
    for number, entry in enumerate(document, start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a JSON object, not {_json_type(entry)}")
        if _is_text(entry.get("issuer")):
            where += f" (issuer {entry['issuer']!r})"
        try:
            config = _issuer_from_json(entry, path.parent)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if config.issuer in entries_by_issuer:
            raise ValueError(
                f"{where}: field 'issuer': already configured by entry {entries_by_issuer[config.issuer]}"
            )
        entries_by_issuer[config.issuer] = number
        issuers.append(config)
    return issuers


def _issuer_from_json(entry: dict[str, Any], base: Path) -> IssuerConfig:
    known = [field.name for field in fields(IssuerConfig)]
    for name in entry:
        if name not in known:
            raise ValueError(f"unknown field {name!r} (known fields: {', '.join(known)})")
    for name in ("issuer", "audiences"):
        if name not in entry:
            raise ValueError(f"field {name!r}: missing, and required")
    values: dict[str, Any] = {}
    for name, value in entry.items():
        if name in ("audiences", "algorithms"):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"field {name!r}: must be a list of strings, not {_json_type(value)}")
            values[name] = tuple(value)
        elif name == "kubernetes":
            if not isinstance(value, bool):
                raise ValueError(f"field 'kubernetes': must be true or false, not {_json_type(value)}")
            values[name] = value
        elif not isinstance(value, str):
            raise ValueError(f"field {name!r}: must be a string, not {_json_type(value)}")
        elif name == "jwks_file":
            values[name] = base / value
        else:
            values[name] = value
    return IssuerConfig(**values)


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    names |= {dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class VerifiedJwt:
    """What a valid token proves."""

    principal: str  # user:<claim> (with the issuer's prefix), or serviceaccount:<ns>/<name>
    groups: tuple[str, ...]  # group:<g> for each entry of the groups claim
    issuer: str
    subject: str  # the raw `sub` claim ("" if the token has none)
    expires_at: float  # `exp`, seconds since the epoch


class JwtRejected(Exception):
    """A token that proves nothing. `problem` is a short code; str(exc) is safe to return."""

    def __init__(self, problem: JwtProblem, message: str) -> None:
        super().__init__(message)
        self.problem: JwtProblem = problem


@dataclass(frozen=True)
class _Issuer:
    config: IssuerConfig
    keys: IssuerKeys


@dataclass(frozen=True)
class _CachedJwt:
    verified: VerifiedJwt
    keys: IssuerKeys
    key: jwt.PyJWK


class JwtVerifier:
    """Verifies tokens from the configured issuers; `start()` before use, `close()` after.

    `clock` (seconds since the epoch) judges `exp`/`nbf`/`iat` and paces key-set refreshes
    prompted by unknown kids (at most one per issuer per `min_refresh_seconds`); every
    `refresh_seconds` a background task re-reads every issuer's JWKS."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        leeway_seconds: float = 30,
        refresh_seconds: float = 300,
        clock: Callable[[], float] = time.time,
        min_refresh_seconds: float = 10,
        fetch_timeout_seconds: float = 5,
        max_cached_tokens: int = 10_000,
    ) -> None:
        self._issuers: dict[str, _Issuer] = {}
        for config in issuers:
            if config.issuer in self._issuers:
                raise ValueError(f"issuer {config.issuer!r} is configured twice")
            keys = IssuerKeys(
                config.issuer,
                jwks_file=config.jwks_file,
                jwks_url=config.jwks_url,
                clock=clock,
                min_refresh_seconds=min_refresh_seconds,
                fetch_timeout_seconds=fetch_timeout_seconds,
            )
            self._issuers[config.issuer] = _Issuer(config, keys)
        self._leeway = leeway_seconds
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._max_cached_tokens = max_cached_tokens
        self._verified: OrderedDict[bytes, _CachedJwt] = OrderedDict()
        # Keys below the minimum size never enter a key set; enforcing here as well keeps PyJWT
        # from warning (a warning would be an error under our test settings).
        self._jws = jwt.PyJWS(options={"enforce_minimum_key_length": True})
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load every issuer's JWKS. An unreachable URL is logged and retried later (by the
        periodic refresh, or at the first token); a broken file raises ValueError."""
        issuers = list(self._issuers.values())
        outcomes = await asyncio.gather(*(issuer.keys.load() for issuer in issuers), return_exceptions=True)
        for issuer, outcome in zip(issuers, outcomes, strict=True):
            if isinstance(outcome, JwksError):
                if issuer.keys.is_file:
                    raise ValueError(f"issuer {issuer.config.issuer!r}: {outcome}")
                log.warning(
                    "an issuer's JWKS is unavailable at start; its tokens fail until it loads",
                    issuer=issuer.config.issuer,
                    error=str(outcome),
                )
            elif isinstance(outcome, BaseException):
                raise outcome
        if self._refresher is None and self._refresh_seconds > 0:
            self._refresher = asyncio.create_task(self._refresh_periodically(), name="jwks-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def refresh(self) -> None:
        """Re-read every issuer's JWKS now, as the background task does periodically."""
        await asyncio.gather(*(issuer.keys.refresh() for issuer in self._issuers.values()))

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the JWKS of the trusted issuers failed; retrying next round")

    @staticmethod
    def looks_like_jwt(credential: str) -> bool:
        """Whether a credential has a JWT's shape (three base64url parts; the last may be empty,
        so that an unsigned token is refused by `verify` with a precise reason)."""
        return _COMPACT_JWS.fullmatch(credential) is not None

    async def verify(self, token: str) -> VerifiedJwt:
        """The principal a token proves; raise JwtRejected if it proves nothing."""
        if len(token) > MAX_TOKEN_CHARS or not self.looks_like_jwt(token):
            raise JwtRejected("malformed", "the credential is not a well-formed JWT")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            if self._still_valid(cached):
                self._verified.move_to_end(digest)
                return cached.verified
            del self._verified[digest]

        header, claims = self._parse(token)
        issuer = self._issuer_of(claims)
        config = issuer.config
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in config.algorithms:
            raise JwtRejected(
                "unsupported_algorithm",
                f"JWT algorithm {_shown(algorithm)} is not accepted for issuer {config.issuer} "
                f"(accepted: {', '.join(config.algorithms)})",
            )
        key = await self._verify_signature(token, header.get("kid"), algorithm, issuer)
        verified = self._check_claims(claims, config)
        if self._max_cached_tokens > 0:
            self._verified[digest] = _CachedJwt(verified, issuer.keys, key)
            if len(self._verified) > self._max_cached_tokens:
                self._verified.popitem(last=False)
        return verified

    def _still_valid(self, cached: _CachedJwt) -> bool:
        unexpired = self._clock() < cached.verified.expires_at + self._leeway
        return unexpired and cached.keys.current.holds(cached.key)

    def _parse(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            decoded = self._jws.decode_complete(token, options={"verify_signature": False})
            claims = json.loads(decoded["payload"])
        except (jwt.PyJWTError, ValueError, RecursionError):
            raise JwtRejected(
                "malformed", "the JWT's header or payload is not valid base64url JSON"
            ) from None
        if not isinstance(claims, dict):
            raise JwtRejected("malformed", "the JWT's payload is not a JSON object")
        header: dict[str, Any] = decoded["header"]
        return header, claims

    def _issuer_of(self, claims: dict[str, Any]) -> _Issuer:
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise JwtRejected("missing_claim", "the JWT has no 'iss' claim (issuer)")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise JwtRejected("unknown_issuer", f"JWT issuer {_shown(iss)} is not trusted")
        return issuer

    async def _verify_signature(self, token: str, kid: Any, algorithm: str, issuer: _Issuer) -> jwt.PyJWK:
        # PyJWS validated the header: a kid, when present, is a string.
        candidates = issuer.keys.current.candidates(kid, algorithm)
        if not candidates and kid is not None:
            await issuer.keys.refresh_for_unknown_kid()
            candidates = issuer.keys.current.candidates(kid, algorithm)
        if not candidates:
            which = f"with kid {_shown(kid)}" if kid is not None else f"for {algorithm}"
            raise JwtRejected(
                "unknown_key", f"issuer {issuer.config.issuer} has no current signing key {which}"
            )
        for key in candidates:
            try:
                self._jws.decode_complete(token, key=key, algorithms=issuer.config.algorithms)
            except jwt.InvalidAlgorithmError:
                raise JwtRejected(
                    "unsupported_algorithm",
                    f"JWT algorithm {algorithm} does not match its key's ({key.algorithm_name})",
                ) from None
            except jwt.PyJWTError:
                continue
            return key
        raise JwtRejected("invalid_signature", "the JWT's signature does not verify")

    def _check_claims(self, claims: dict[str, Any], config: IssuerConfig) -> VerifiedJwt:
        now = self._clock()
        expires_at = _numeric_date(claims, "exp")
        if expires_at is None:
            raise JwtRejected("missing_claim", "the JWT has no 'exp' claim (expiry)")
        if now >= expires_at + self._leeway:
            raise JwtRejected("expired", f"the JWT expired at {_when(expires_at)}")
        not_before = _numeric_date(claims, "nbf")
        if not_before is not None and not_before > now + self._leeway:
            raise JwtRejected("not_yet_valid", f"the JWT is not valid before {_when(not_before)}")
        issued_at = _numeric_date(claims, "iat")
        if issued_at is not None and issued_at > now + self._leeway:
            raise JwtRejected("not_yet_valid", f"the JWT was issued in the future ({_when(issued_at)})")
        self._check_audience(claims, config)
        subject = claims.get("sub")
        return VerifiedJwt(
            principal=_principal(claims, config),
            groups=_groups(claims, config),
            issuer=config.issuer,
            subject=subject if isinstance(subject, str) else "",
            expires_at=expires_at,
        )

    @staticmethod
    def _check_audience(claims: dict[str, Any], config: IssuerConfig) -> None:
        aud = claims.get("aud")
        if aud is None:
            raise JwtRejected("missing_claim", "the JWT has no 'aud' claim (audience)")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(item, str) for item in audiences):
            raise JwtRejected("malformed", "the JWT's 'aud' claim is neither a string nor a list of strings")
        if not any(audience in config.audiences for audience in audiences):
            raise JwtRejected(
                "wrong_audience",
                f"the JWT's audience {_shown(aud)} is not accepted; issuer {config.issuer} "
                f"tokens must be for {' or '.join(config.audiences)}",
            )


def _principal(claims: dict[str, Any], config: IssuerConfig) -> str:
    if config.kubernetes:
        match = _SERVICE_ACCOUNT_SUBJECT.fullmatch(str(claims.get("sub", "")))
        if match is None:
            raise JwtRejected(
                "missing_claim",
                "the JWT's 'sub' claim is not a Kubernetes service account "
                "(system:serviceaccount:<namespace>:<name>)",
            )
        return f"serviceaccount:{match[1]}/{match[2]}"
    value = claims.get(config.principal_claim)
    if not _is_claim_text(value):
        raise JwtRejected(
            "missing_claim",
            f"the JWT has no {config.principal_claim!r} claim "
            f"(a printable string of at most {MAX_CLAIM_CHARS} characters)",
        )
    # An unverified email is whatever the user typed: it proves no identity.
    if config.principal_claim == "email" and claims.get("email_verified", True) not in (True, "true"):
        raise JwtRejected("missing_claim", "the JWT's 'email' claim is not verified (email_verified)")
    return f"{config.principal_prefix}{value}"


def _groups(claims: dict[str, Any], config: IssuerConfig) -> tuple[str, ...]:
    value = claims.get(config.groups_claim)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(_is_claim_text(group) for group in value):
        raise JwtRejected(
            "malformed",
            f"the JWT's {config.groups_claim!r} claim is not a list of printable strings "
            f"(at most {MAX_CLAIM_CHARS} characters each)",
        )
    return tuple(dict.fromkeys(f"group:{group}" for group in value))


def _is_claim_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS and value.isprintable()


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwtRejected("malformed", f"the JWT's {name!r} claim is not a number of seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise JwtRejected("malformed", f"the JWT's {name!r} claim is out of range")
    return seconds


def _when(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s after the epoch"


def _shown(value: object) -> str:
    """A value from a token, quoted and cut so a message never carries much of a token."""
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS] + "...")
    return repr(text)
