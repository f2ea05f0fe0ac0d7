"""The OIDC sign-in's rules that need no provider: settings, PKCE, the sealed flow, the session's
end at the token's expiry."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from modelreg_web.config import OidcSettings, WebConfigError
from modelreg_web.oidc import Flow, allowed_url, pkce_challenge, quoted
from modelreg_web.sessions import SessionCodec

KEY = hashlib.sha256(b"test").digest()
ISSUER = "https://login.example.com"


def test_no_issuer_is_no_oidc() -> None:
    assert OidcSettings.from_environment({}) is None


def test_settings_with_defaults_and_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    settings = OidcSettings.from_environment(
        {
            "MODELREG_WEB_OIDC_ISSUER": ISSUER,
            "MODELREG_WEB_OIDC_CLIENT_ID": "modelreg-web",
            "MODELREG_WEB_OIDC_CLIENT_SECRET_FILE": str(secret),
        }
    )
    assert settings is not None
    assert (settings.client_id, settings.client_secret, settings.scopes) == (
        "modelreg-web",
        "s3cret",
        "openid profile email",
    )
    assert "s3cret" not in repr(settings)
    secret.chmod(0o644)
    with pytest.raises(WebConfigError, match="readable by others"):
        OidcSettings.from_environment(
            {
                "MODELREG_WEB_OIDC_ISSUER": ISSUER,
                "MODELREG_WEB_OIDC_CLIENT_ID": "x",
                "MODELREG_WEB_OIDC_CLIENT_SECRET_FILE": str(secret),
            }
        )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MODELREG_WEB_OIDC_ISSUER": "http://login.example.com"}, "not an https URL"),
        ({"MODELREG_WEB_OIDC_ISSUER": ISSUER}, "MODELREG_WEB_OIDC_CLIENT_ID"),
        (
            {
                "MODELREG_WEB_OIDC_ISSUER": ISSUER,
                "MODELREG_WEB_OIDC_CLIENT_ID": "x",
                "MODELREG_WEB_OIDC_SCOPES": "email",
            },
            "must include openid",
        ),
        (
            {
                "MODELREG_WEB_OIDC_ISSUER": ISSUER,
                "MODELREG_WEB_OIDC_CLIENT_ID": "x",
                "MODELREG_WEB_OIDC_REDIRECT_URL": "/signin/oidc/callback",
            },
            "not an absolute URL",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], problem: str) -> None:
    with pytest.raises(WebConfigError, match=problem):
        OidcSettings.from_environment(env)


def test_pkce_s256_matches_rfc_7636() -> None:
    # RFC 7636, appendix B.
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    flow = Flow.start("/")
    assert 43 <= len(flow.verifier) <= 128
    assert flow.state != Flow.start("/").state


def test_endpoints_must_be_https_except_on_loopback() -> None:
    assert allowed_url("https://login.example.com/authorize")
    assert allowed_url("http://127.0.0.1:5556/token")
    assert not allowed_url("http://login.example.com/token")
    assert not allowed_url("javascript:alert(1)")


def test_quotes_are_short() -> None:
    assert len(quoted("x" * 5000)) < 80


def test_a_flow_cookie_is_no_session_and_a_session_is_no_flow() -> None:
    codec = SessionCodec(KEY, 3600)
    flow = codec.seal_flow(Flow.start("/audit").as_dict(), 600)
    assert codec.open(flow) is None
    opened = codec.open_flow(flow)
    assert opened is not None
    assert Flow.from_dict(opened).next == "/audit"
    assert codec.open_flow(codec.seal("mrt_x", "user:a")) is None
    assert codec.open_flow(codec.seal_flow({"s": "a"}, -1)) is None  # expired


def test_a_session_ends_no_later_than_its_token() -> None:
    codec = SessionCodec(KEY, 3600)
    soon = int(time.time()) + 60
    session = codec.open(codec.seal("jwt", "user:a", not_after=soon))
    assert session is not None
    assert session.expires == soon
    assert codec.open(codec.seal("jwt", "user:a", not_after=int(time.time()) - 1)) is None
    later = codec.open(codec.seal("jwt", "user:a", not_after=soon + 10 * 3600))
    assert later is not None
    assert later.expires <= time.time() + 3600
