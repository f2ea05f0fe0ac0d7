"""Signing in to the web UI through an OpenID Connect provider (authorization code + PKCE).

A provider of the test's own (tests/web/oidc_provider.py) on 127.0.0.1; a metadata process of the
module's own whose issuers file trusts it (the registry decides who the id_token names); web
services configured with the provider, through the real stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from modelreg_local.stack import LocalStack, WebProcess
from modelreg_local.stores import free_port

from tests.integration.isolated import Isolated
from tests.web.browser import Browser
from tests.web.conftest import WebFactory
from tests.web.oidc_provider import OidcProvider, trusting_metadata

pytestmark = pytest.mark.integration

CLIENT_ID = "modelreg-web"
SECRET = "client-s3cret-for-the-test"
SUBJECT = "dana@example.test"
PRINCIPAL = f"user:{SUBJECT}"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(client_id=CLIENT_ID, secret=SECRET, subject=SUBJECT) as idp:
        yield idp


@pytest.fixture(autouse=True)
def _provider_defaults(provider: OidcProvider) -> None:
    provider.deny = False
    provider.lifetime_seconds = 600.0


@pytest.fixture(scope="module")
def trusting(
    stack: LocalStack, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Isolated]:
    """A metadata process whose issuers file trusts the provider for the web UI's client id."""
    service = trusting_metadata(stack, provider, tmp_path_factory.mktemp("oidc-metadata"))
    yield service
    service.stop()


def oidc_env(issuer: str) -> dict[str, str]:
    return {
        "MODELREG_WEB_OIDC_ISSUER": issuer,
        "MODELREG_WEB_OIDC_CLIENT_ID": CLIENT_ID,
        "MODELREG_WEB_OIDC_CLIENT_SECRET": SECRET,
    }


@pytest.fixture(scope="module")
def oidc_web(start_web: WebFactory, provider: OidcProvider, trusting: Isolated) -> WebProcess:
    return start_web(MODELREG_METADATA_ADDR=trusting.address, **oidc_env(provider.issuer))


def to_callback(browser: Browser, next_path: str = "/") -> str:
    """Click "Sign in with ..." and let the provider answer: the callback URL it sends back to
    (not yet visited)."""
    start = browser.get(f"/signin/oidc?{urlencode({'next': next_path})}", follow=False)
    assert start.status_code == 303, start.text[:500]
    at_provider = browser.get(start.headers["location"], follow=False)
    assert at_provider.status_code == 302
    callback: str = at_provider.headers["location"]
    return callback


def test_the_whole_flow_signs_in_as_the_oidc_principal(oidc_web: WebProcess, provider: OidcProvider) -> None:
    with Browser(oidc_web.url) as browser:
        form = browser.get("/signin")
        assert 'data-testid="signin-form"' in form.text  # the token form stays
        assert 'data-testid="signin-oidc"' in form.text
        assert "Sign in with 127.0.0.1" in form.text

        start = browser.get("/signin/oidc?next=/audit", follow=False)
        authorize = urlsplit(start.headers["location"])
        query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        assert authorize.path == "/authorize"
        assert query["code_challenge_method"] == "S256"
        assert query["scope"] == "openid profile email"
        assert query["redirect_uri"] == f"{oidc_web.url}/signin/oidc/callback"
        assert {"state", "nonce", "code_challenge"} <= set(query)
        assert "modelreg_oidc" in browser.cookies  # the sealed flow cookie
        assert browser.cookie_attributes["modelreg_oidc"]["samesite"].lower() == "lax"
        assert browser.cookie_attributes["modelreg_oidc"]["path"] == "/signin/oidc"

        at_provider = browser.get(start.headers["location"], follow=False)
        code = parse_qs(urlsplit(at_provider.headers["location"]).query)["code"][0]
        landed = browser.get(at_provider.headers["location"])
        assert landed.status_code == 200, landed.text[:1000]
        assert PRINCIPAL in landed.text
        assert 'http-equiv="refresh" content="0;url=/audit"' in landed.text
        assert "modelreg_oidc" not in browser.cookies  # the flow is over
        assert browser.cookie_attributes["modelreg_session"]["samesite"].lower() == "strict"

        for path in ("/", "/audit"):
            page = browser.get(path)
            assert page.status_code == 200, page.text[:1000]
            assert f'data-testid="principal">{PRINCIPAL}<' in page.text
    # Nothing secret in the web service's log: not the code, not the state, not the token.
    log = oidc_web.log_path.read_text(errors="replace")
    assert "/signin/oidc/callback?..." in log
    assert code not in log
    assert query["state"] not in log
    assert "eyJ" not in log


def test_a_wrong_state_is_refused(oidc_web: WebProcess) -> None:
    with Browser(oidc_web.url) as browser:
        callback = urlsplit(to_callback(browser))
        query = {k: v[0] for k, v in parse_qs(callback.query).items()}
        forged = f"{callback.path}?{urlencode({**query, 'state': 'not-the-state'})}"
        page = browser.get(forged)
        assert page.status_code == 400
        assert "state mismatch" in page.text
        assert query["code"] not in page.text
        assert "modelreg_session" not in browser.cookies
        assert browser.get("/", follow=False).headers["location"].startswith("/signin")


def test_a_code_obtained_with_another_verifier_is_refused_by_the_provider(
    oidc_web: WebProcess, provider: OidcProvider
) -> None:
    """An attacker's code (obtained for a challenge of theirs) injected into this browser's sign-in:
    the verifier the web service holds does not match, the provider refuses, a clear page says so."""
    with Browser(oidc_web.url) as browser:
        start = browser.get("/signin/oidc", follow=False)
        authorize = urlsplit(start.headers["location"])
        query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        query["code_challenge"] = "A" * 43  # the challenge of some other verifier
        at_provider = browser.get(f"{provider.issuer}/authorize?{urlencode(query)}", follow=False)
        refusals = len(provider.token_refusals)
        page = browser.get(at_provider.headers["location"])
        assert page.status_code == 502
        assert "The sign-in provider refused the sign-in" in page.text
        assert "invalid_grant" in page.text
        assert provider.token_refusals[refusals:] == ["invalid_grant"]
        assert "Traceback" not in page.text
        assert "modelreg_session" not in browser.cookies


def test_a_replayed_callback_is_refused(oidc_web: WebProcess, provider: OidcProvider) -> None:
    with Browser(oidc_web.url) as browser:
        callback = to_callback(browser)
        flow_cookie = browser.cookies["modelreg_oidc"]
        assert browser.get(callback).status_code == 200
        # The flow cookie is gone: a second visit finds no sign-in in progress.
        again = browser.get(callback)
        assert again.status_code == 400
        assert "No sign-in in progress" in again.text
    with Browser(oidc_web.url) as thief:
        # Someone who kept the flow cookie as well: the provider refuses a code used twice.
        thief.cookies["modelreg_oidc"] = flow_cookie
        stolen = thief.get(callback)
        assert stolen.status_code == 502
        assert "modelreg_session" not in thief.cookies
        assert provider.token_refusals[-1] == "invalid_grant"


def test_access_denied_at_the_provider_is_shown_clearly(oidc_web: WebProcess, provider: OidcProvider) -> None:
    provider.deny = True
    with Browser(oidc_web.url) as browser:
        page = browser.get("/signin/oidc")
        assert page.status_code == 403
        assert "Sign-in was cancelled" in page.text
        assert "modelreg_oidc" not in browser.cookies
        assert "modelreg_session" not in browser.cookies


def test_the_session_ends_with_the_id_token(oidc_web: WebProcess, provider: OidcProvider) -> None:
    provider.lifetime_seconds = 3
    with Browser(oidc_web.url) as browser:
        assert browser.get(to_callback(browser, "/audit")).status_code == 200
        assert browser.get("/").status_code == 200
        time.sleep(4)
        ended = browser.get("/audit", follow=False)
        assert ended.status_code == 303
        assert ended.headers["location"].startswith("/signin?expired=1&")
        page = browser.get(ended.headers["location"])
        assert "Your session ended" in page.text
        assert "modelreg_session" not in browser.cookies


def test_an_id_token_the_registry_does_not_trust_is_refused(
    start_web: WebFactory, provider: OidcProvider
) -> None:
    """The web service is configured with the provider, but the registry (the session's metadata
    service, no issuers file naming it) is not: nobody is signed in."""
    web = start_web(**oidc_env(provider.issuer))
    with Browser(web.url) as browser:
        page = browser.get("/signin/oidc")
        assert page.status_code == 401
        assert "The registry did not accept this sign-in" in page.text
        assert "eyJ" not in page.text  # no part of the id_token is echoed
        assert "modelreg_session" not in browser.cookies


def test_a_provider_that_is_down_gives_a_clear_page(start_web: WebFactory) -> None:
    web = start_web(**oidc_env(f"http://127.0.0.1:{free_port()}"))
    with Browser(web.url) as browser:
        page = browser.get("/signin/oidc")
        assert page.status_code == 502
        assert "The sign-in provider is not answering" in page.text
        assert "Traceback" not in page.text


def test_no_provider_button_without_configuration(web_url: str) -> None:
    with Browser(web_url) as browser:
        form = browser.get("/signin")
        assert 'data-testid="signin-form"' in form.text
        assert "signin-oidc" not in form.text
        assert browser.get("/signin/oidc").status_code == 404
