"""Signing keys, JWKS files and a JWKS server for tests of JWT authentication.

key = SigningKey.rsa("k1")
with JwksServer([key]) as jwks:          # or write_jwks(tmp_path / "jwks.json", [key])
    token = sign(key, claims("https://issuer.test", "modelreg", "alice"))
    jwks.set_keys([SigningKey.ec("k2")])  # rotation: the next fetch serves the new set
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = ["JwksServer", "SigningKey", "claims", "compact", "sign", "write_jwks"]


@dataclass(frozen=True)
class SigningKey:
    """A private key with its kid and algorithm, as an issuer holds it."""

    kid: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str  # "RS256" or "ES256"

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def write_jwks(path: Path, keys: Iterable[SigningKey]) -> Path:
    """Write the public JWKS of `keys` to `path` (replacing it) and return the path."""
    path.write_text(json.dumps(jwks_document(keys)), encoding="utf-8")
    return path


def claims(
    issuer: str,
    audience: str | list[str],
    subject: str,
    *,
    now: float | None = None,
    lifetime_seconds: float = 600,
    **extra: Any,
) -> dict[str, Any]:
    """The claims of an ordinary token: iss, aud, sub, iat, nbf and exp (`now` + lifetime)."""
    issued = int(time.time() if now is None else now)
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": int(issued + lifetime_seconds),
        **extra,
    }


def sign(key: SigningKey, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """A compact JWS of `claims` signed by `key`, with its kid (override it in `headers`)."""
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, **(headers or {})}
    )


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS from its parts, for forged tokens (alg none, HMAC with a public key...).
    The signing input of such a token is everything before the last dot."""
    return f"{_segment(header)}.{_segment(claims)}.{_b64(signature)}"


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class JwksServer:
    """Serves a JWKS at `url` on 127.0.0.1 (a free port) from a background thread.

    `set_keys` rotates the set; `failing = True` answers 503 (an outage); `requests` counts the
    GETs served. Use as a context manager: leaving it stops the thread and frees the port."""

    def __init__(self, keys: Sequence[SigningKey] = ()) -> None:
        self._lock = threading.Lock()
        self._body = json.dumps(jwks_document(keys)).encode()
        self.failing = False
        self.requests = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/jwks.json"

    def set_keys(self, keys: Sequence[SigningKey]) -> None:
        with self._lock:
            self._body = json.dumps(jwks_document(keys)).encode()

    def _response(self) -> tuple[HTTPStatus, bytes]:
        with self._lock:
            self.requests += 1
            if self.failing:
                return HTTPStatus.SERVICE_UNAVAILABLE, b"down for a test"
            return HTTPStatus.OK, self._body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._response()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def start(self) -> JwksServer:
        self._thread = threading.Thread(target=self._serve, name="jwks-server", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)  # shutdown() waits up to one interval

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
