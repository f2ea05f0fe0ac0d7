"""A small OpenID Connect provider on 127.0.0.1 for the web UI's sign-in tests.

It serves discovery, a JWKS, an authorization endpoint that at once sends the browser back with
a code (or with `error=access_denied` when `deny` is set), and a token endpoint that checks what a
real one checks: the code (single use), the client id and secret, the redirect URI and the PKCE
verifier against the S256 challenge of the authorization request.

with OidcProvider(client_id="modelreg-web", secret="s3cret", subject="dana@example.test") as idp:
    idp.issuer, idp.jwks_url    # what the metadata service's issuers file names
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from modelreg_local.stack import LocalStack

from tests.identity_keys import SigningKey, claims, jwks_document, sign
from tests.integration.isolated import Isolated


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str


def trusting_metadata(stack: LocalStack, provider: OidcProvider, directory: Path) -> Isolated:
    """A metadata process (started) whose issuers file trusts `provider` for its client id."""
    issuers = directory / "issuers.json"
    issuers.write_text(
        json.dumps(
            [{"issuer": provider.issuer, "audiences": [provider.client_id], "jwks_url": provider.jwks_url}]
        )
    )
    service = Isolated(stack, directory)
    service.env["MODELREG_OIDC_ISSUERS_FILE"] = str(issuers)
    service.start()
    return service


class OidcProvider:
    def __init__(self, *, client_id: str, secret: str, subject: str, host: str = "127.0.0.1") -> None:
        """`host`: the name in the issuer URL (`localhost` makes the provider another site than
        a web UI on 127.0.0.1, as a real provider is); it listens on 127.0.0.1 either way."""
        self.client_id, self.secret, self.subject, self.host = client_id, secret, subject, host
        self.key = SigningKey.rsa("idp-1")
        self.deny = False
        self.lifetime_seconds = 600.0
        self.token_refusals: list[str] = []  # the `error` of every refused token request
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://{self.host}:{port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Where the browser goes next (the client's redirect URI with a code or an error)."""
        redirect_uri = query["redirect_uri"]
        assert query["client_id"] == self.client_id
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        answer = {"state": query["state"]}
        if self.deny:
            answer["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._grants[code] = Grant(
                    self.client_id, redirect_uri, query["code_challenge"], query["nonce"]
                )
            answer["code"] = code
        return f"{redirect_uri}?{urlencode(answer)}"

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code is good once
        expected_auth = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        ).rstrip(b"=")
        if grant is None:
            error = "invalid_grant"
        elif authorization != expected_auth or form.get("client_id") != grant.client_id:
            error = "invalid_client"
        elif form.get("redirect_uri") != grant.redirect_uri or form.get("grant_type") != "authorization_code":
            error = "invalid_grant"
        elif challenge.decode() != grant.challenge:
            error = "invalid_grant"  # RFC 7636 4.6: the verifier does not match the challenge
        else:
            id_token = sign(
                self.key,
                claims(
                    self.issuer,
                    self.client_id,
                    self.subject,
                    lifetime_seconds=self.lifetime_seconds,
                    nonce=grant.nonce,
                ),
            )
            return 200, {
                "access_token": "at-" + secrets.token_urlsafe(8),
                "token_type": "Bearer",
                "id_token": id_token,
            }
        self.token_refusals.append(error)
        return 400, {"error": error}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any], location: str = "") -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._send(200, provider.discovery())
                elif parts.path == "/jwks.json":
                    self._send(200, jwks_document([provider.key]))
                elif parts.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    self._send(302, {}, provider.authorize(query))
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != "/token":
                    self._send(404, {"error": "not_found"})
                    return
                self._send(*provider.token(form, self.headers.get("Authorization", "")))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def __enter__(self) -> OidcProvider:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oidc-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
