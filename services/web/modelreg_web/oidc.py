"""Sign-in through the deployment's OpenID Connect provider: authorization code with PKCE.

Who the user is stays the registry's decision: the web service only runs the browser through the
provider and exchanges the code; the id_token it receives is then presented to the metadata
service (GetCallerIdentity) like any pasted JWT, and the metadata service verifies signature,
issuer, audience and expiry against the issuers it trusts (docs/security.md). A provider the
registry does not trust can therefore sign no one in, whatever this service is configured with.

The service keeps no state (several replicas): the state, nonce, PKCE verifier and the page to
return to travel in a short-lived cookie sealed like the session (AES-GCM), scoped to
/signin/oidc. It is SameSite=Lax, not Strict: the provider's redirect back is a cross-site
navigation, on which a Strict cookie would not be sent. The callback deletes it, so a replayed
callback finds no sign-in in progress; the provider refuses a code used twice anyway.

Nothing secret is logged or put in a URL: the only credential in a URL is the one-time code the
provider hands back; provider answers are quoted only by a short prefix.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from modelreg_web.config import OidcSettings

log = logging.getLogger("modelreg_web.oidc")

FLOW_COOKIE = "modelreg_oidc"
FLOW_COOKIE_PATH = "/signin/oidc"
FLOW_SECONDS = 600  # a person has ten minutes at the provider
DISCOVERY_SECONDS = 3600  # providers rotate endpoints rarely; a restart or an hour picks it up
MAX_DOCUMENT_BYTES = 256 * 1024
QUOTE_CHARS = 64


class OidcError(Exception):
    """The sign-in cannot go on: `title` and one line for the reader (no secret in either)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


def quoted(text: object) -> str:
    """At most a short prefix of something a provider or a browser sent."""
    value = str(text)
    return repr(value[:QUOTE_CHARS] + ("..." if len(value) > QUOTE_CHARS else ""))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier))."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in in progress, as kept in the sealed flow cookie."""

    state: str
    nonce: str
    verifier: str
    next: str

    @classmethod
    def start(cls, next_path: str) -> Flow:
        return cls(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),  # 64 characters, within RFC 7636's 43..128
            next=next_path,
        )

    def as_dict(self) -> dict[str, str]:
        return {"s": self.state, "n": self.nonce, "v": self.verifier, "x": self.next}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Flow:
        return cls(state=str(body["s"]), nonce=str(body["n"]), verifier=str(body["v"]), next=str(body["x"]))


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str


def allowed_url(url: str) -> bool:
    """https, or http only to this machine (a provider in a test or on a developer's laptop)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


class OidcProvider:
    """The configured provider: discovery (cached, bounded in time and size), the authorization
    URL, and the code exchange."""

    def __init__(self, settings: OidcSettings, timeout: float = 5.0) -> None:
        self.settings = settings
        # TLS verified (httpx's default, the system's CAs); no redirects followed, no cookies kept.
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        self._endpoints: Endpoints | None = None
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    @property
    def display_name(self) -> str:
        return self.settings.display_name or (urlsplit(self.settings.issuer).hostname or self.settings.issuer)

    async def close(self) -> None:
        await self._http.aclose()

    async def endpoints(self) -> Endpoints:
        async with self._lock:
            if self._endpoints is None or time.monotonic() - self._fetched > DISCOVERY_SECONDS:
                self._endpoints = await self._discover()
                self._fetched = time.monotonic()
            return self._endpoints

    async def _discover(self) -> Endpoints:
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._json("GET", url, what="discovery")
        if document.get("issuer") != self.settings.issuer:
            raise _provider_broken(f"its discovery names another issuer, {quoted(document.get('issuer'))}")
        endpoints = []
        for key in ("authorization_endpoint", "token_endpoint"):
            value = document.get(key)
            if not isinstance(value, str) or not allowed_url(value):
                raise _provider_broken(f"its discovery has no usable {key}")
            endpoints.append(value)
        return Endpoints(authorization=endpoints[0], token=endpoints[1])

    async def authorization_url(self, flow: Flow, redirect_url: str) -> str:
        endpoints = await self.endpoints()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_url,
                "scope": self.settings.scopes,
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": pkce_challenge(flow.verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(endpoints.authorization).query else "?"
        return endpoints.authorization + separator + query

    async def exchange(self, code: str, flow: Flow, redirect_url: str) -> str:
        """The id_token for `code` (the token endpoint checks the code, client and verifier)."""
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_url,
            "client_id": self.settings.client_id,
            "code_verifier": flow.verifier,
        }
        auth = None
        if self.settings.client_secret:
            auth = httpx.BasicAuth(self.settings.client_id, self.settings.client_secret)
        answer = await self._json("POST", endpoints.token, what="token", data=form, auth=auth)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise _provider_broken("its token answer has no id_token")
        return id_token

    async def _json(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            # The exception's text may contain the URL, never the form: the type says enough.
            log.warning("OIDC %s request to the provider failed: %s", what, type(exc).__name__)
            raise OidcError(
                502,
                "The sign-in provider is not answering",
                f"{self.display_name} could not be reached ({type(exc).__name__}). "
                "Try again in a moment, or sign in with an API token.",
            ) from None
        body = response.content[:MAX_DOCUMENT_BYTES]
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if response.status_code >= 400:
            error = document.get("error", "") if isinstance(document, dict) else ""
            log.warning("OIDC %s request refused: HTTP %d %s", what, response.status_code, quoted(error))
            raise OidcError(
                502,
                "The sign-in provider refused the sign-in",
                f"{self.display_name} answered HTTP {response.status_code}"
                + (f" ({quoted(error)})" if error else "")
                + ". Sign in again.",
            )
        if not isinstance(document, dict):
            raise _provider_broken(f"its {what} answer is not a JSON object")
        return document


class CallbackRedaction(logging.Filter):
    """Keeps the one-time code and the state out of the access log: the callback's query string
    is logged as `?...` (uvicorn's access records carry the path with its query as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(
                value.split("?", 1)[0] + "?..."
                if isinstance(value, str) and value.startswith(FLOW_COOKIE_PATH + "/callback?")
                else value
                for value in args
            )
        return True


def _provider_broken(detail: str) -> OidcError:
    log.warning("OIDC provider answer unusable: %s", detail)
    return OidcError(502, "The sign-in provider answered something unusable", f"The provider: {detail}.")


def unverified_claims(id_token: str) -> dict[str, Any]:
    """The claims of a compact JWS, not verified: only to compare the nonce and read exp. The
    metadata service verifies the token before anyone is signed in."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise OidcError(502, "The sign-in provider answered something unusable", "The id_token is not a JWT.")
    try:
        body = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OidcError(502, "The sign-in provider answered something unusable", "The id_token is not a JWT.")
    return body
