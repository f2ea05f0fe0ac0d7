"""The web service's settings, read from the environment once in `main()` and passed down."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from modelreg.settings import ClientSettings, RetryPolicy
from modelreg_api.addresses import ServiceAddresses
from modelreg_api.channels import ClientTls
from modelreg_common.config import EnvReader
from modelreg_common.observability.exposition import WEB_METRICS_ADDR, read_metrics_addr

WEB_ADDR_ENV = "MODELREG_WEB_ADDR"
DEFAULT_WEB_ADDR = "127.0.0.1:8080"
SESSION_KEY_ENV = "MODELREG_WEB_SESSION_KEY"
SESSION_KEY_FILE_ENV = "MODELREG_WEB_SESSION_KEY_FILE"
# The local stack writes this file into its data directory (mode 0600) and points the service at it.
SESSION_KEY_FILE = "web-session.key"
OIDC_ISSUER_ENV = "MODELREG_WEB_OIDC_ISSUER"
OIDC_CLIENT_ID_ENV = "MODELREG_WEB_OIDC_CLIENT_ID"
OIDC_CLIENT_SECRET_ENV = "MODELREG_WEB_OIDC_CLIENT_SECRET"  # noqa: S105 - a variable name
OIDC_CLIENT_SECRET_FILE_ENV = "MODELREG_WEB_OIDC_CLIENT_SECRET_FILE"  # noqa: S105 - a variable name
OIDC_REDIRECT_URL_ENV = "MODELREG_WEB_OIDC_REDIRECT_URL"
OIDC_SCOPES_ENV = "MODELREG_WEB_OIDC_SCOPES"
OIDC_NAME_ENV = "MODELREG_WEB_OIDC_NAME"
DEFAULT_OIDC_SCOPES = "openid profile email"


class WebConfigError(ValueError):
    """The environment does not describe a web service that can start (names the variable)."""


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """The deployment's OpenID Connect provider for browser sign-in (docs/web.md)."""

    issuer: str
    client_id: str
    # Empty for a public client (PKCE alone); else sent with HTTP Basic to the token endpoint.
    client_secret: str = field(default="", repr=False)
    # Empty: this site's own /signin/oidc/callback as the request reached it (set it behind a proxy).
    redirect_url: str = ""
    scopes: str = DEFAULT_OIDC_SCOPES
    display_name: str = ""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> OidcSettings | None:
        issuer = env.get(OIDC_ISSUER_ENV, "").strip()
        if not issuer:
            return None
        parts = urlsplit(issuer)
        local = parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if not (parts.scheme == "https" or local) or not parts.hostname or parts.query or parts.fragment:
            raise WebConfigError(f"{OIDC_ISSUER_ENV}={issuer[:64]!r} is not an https URL")
        client_id = env.get(OIDC_CLIENT_ID_ENV, "").strip()
        if not client_id:
            raise WebConfigError(f"{OIDC_ISSUER_ENV} is set: set {OIDC_CLIENT_ID_ENV} too")
        redirect_url = env.get(OIDC_REDIRECT_URL_ENV, "").strip()
        if redirect_url and not redirect_url.startswith(("https://", "http://")):
            raise WebConfigError(f"{OIDC_REDIRECT_URL_ENV}={redirect_url[:64]!r} is not an absolute URL")
        scopes = " ".join(env.get(OIDC_SCOPES_ENV, "").split()) or DEFAULT_OIDC_SCOPES
        if "openid" not in scopes.split():
            raise WebConfigError(f"{OIDC_SCOPES_ENV} must include openid (the id_token is the credential)")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=_client_secret(env),
            redirect_url=redirect_url,
            scopes=scopes,
            display_name=env.get(OIDC_NAME_ENV, "").strip(),
        )


def _client_secret(env: Mapping[str, str]) -> str:
    secret = env.get(OIDC_CLIENT_SECRET_ENV, "").strip()
    path_text = env.get(OIDC_CLIENT_SECRET_FILE_ENV, "").strip()
    if secret or not path_text:
        return secret
    path = Path(path_text)
    try:
        if path.stat().st_mode & 0o077:
            raise WebConfigError(f"{OIDC_CLIENT_SECRET_FILE_ENV}: {path} is readable by others; chmod 600 it")
        return path.read_text().strip()
    except OSError as exc:
        raise WebConfigError(f"{OIDC_CLIENT_SECRET_FILE_ENV}: cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # 32 bytes: encrypts and authenticates the session cookie (AES-GCM) and keys the CSRF tokens.
    # Every replica behind one load balancer needs the same key.
    session_key: bytes = field(default=b"", repr=False)
    client: ClientSettings = field(default_factory=ClientSettings)
    # How long a sign-in lasts without signing in again (the token's own expiry still applies).
    session_seconds: int = 12 * 3600
    # Seconds uvicorn waits for open requests (downloads, event streams) on SIGTERM.
    shutdown_grace: float = 5.0
    # None: sign-in by token only.
    oidc: OidcSettings | None = None
    # Where `/metrics` is served (MODELREG_METRICS_ADDR; None: `off`): docs/observability.md.
    metrics_addr: str | None = WEB_METRICS_ADDR

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        host, port = _address(env.get(WEB_ADDR_ENV, "").strip() or DEFAULT_WEB_ADDR)
        client = ClientSettings(
            addresses=ServiceAddresses.from_environment(env),
            tls=ClientTls.from_environment(env),
            # Pages answer or show the outage banner within seconds; a person can press reload.
            timeout=10.0,
            retry=RetryPolicy(attempts=2, initial_backoff=0.1, max_backoff=0.5),
        )
        # The service itself holds no credential: every call presents the signed-in user's token.
        client = replace(client, token="", token_source="")
        read = EnvReader(env)
        metrics_addr = read_metrics_addr(read, WEB_METRICS_ADDR)
        if read.problems:
            raise WebConfigError("; ".join(read.problems))
        return cls(
            host=host,
            port=port,
            session_key=_session_key(env),
            client=client,
            oidc=OidcSettings.from_environment(env),
            metrics_addr=metrics_addr,
        )


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WebConfigError(f"{WEB_ADDR_ENV}={value[:64]!r} is not host:port")
    return host.strip("[]"), int(port)


def _session_key(env: Mapping[str, str]) -> bytes:
    """The key from MODELREG_WEB_SESSION_KEY (any string of 32+ characters), else from the file
    MODELREG_WEB_SESSION_KEY_FILE names (which must not be readable by group or others)."""
    raw = env.get(SESSION_KEY_ENV, "").strip()
    source = SESSION_KEY_ENV
    if not raw:
        path_text = env.get(SESSION_KEY_FILE_ENV, "").strip()
        if not path_text:
            raise WebConfigError(
                f"set {SESSION_KEY_ENV} (32+ random characters, the same on every replica) or "
                f"{SESSION_KEY_FILE_ENV} (a file holding it, mode 0600)"
            )
        path = Path(path_text)
        try:
            if path.stat().st_mode & 0o077:
                raise WebConfigError(f"{SESSION_KEY_FILE_ENV}: {path} is readable by others; chmod 600 it")
            raw = path.read_text().strip()
        except OSError as exc:
            raise WebConfigError(f"{SESSION_KEY_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
        source = str(path)
    if len(raw) < 32:
        raise WebConfigError(f"the session key in {source} is shorter than 32 characters")
    # Any string of enough entropy becomes a 256-bit key; replicas given the same string agree.
    return hashlib.sha256(b"modelreg-web-session\0" + raw.encode()).digest()


def key_fingerprint(key: bytes) -> str:
    """Which key a replica uses, safe to log (so mismatched replicas can be spotted)."""
    return base64.urlsafe_b64encode(hashlib.sha256(key).digest()[:6]).decode()
