"""Sign-in, cookies, CSRF, and what users wrote shown without ever running as script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.support import ALICE, credential_for, unique
from tests.web.browser import Browser
from tests.web.conftest import SignedIn
from tests.web.sample import client_for

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
JS_LINK = "javascript:alert(1)"


def test_sign_in_sets_secure_httponly_strict_cookies_and_no_credential_in_urls(web_url: str) -> None:
    token = credential_for(ALICE)
    with Browser(web_url) as browser:
        signed = browser.sign_in(token)
        assert signed.status_code == 303
        assert token not in signed.headers["location"]
        for name in ("modelreg_session", "modelreg_csrf"):
            attributes = browser.cookie_attributes[name]
            assert attributes.get("secure") == "true", name
            assert attributes.get("httponly") == "true", name
            assert attributes.get("samesite", "").lower() == "strict", name
            assert attributes.get("path") == "/", name
        assert token not in browser.cookies["modelreg_session"]  # sealed, not readable
        home = browser.get("/")
        assert home.status_code == 200
        assert str(home.url) == f"{web_url}/"
        assert f'data-testid="principal">{ALICE}<' in home.text
        assert token not in home.text
        assert "content-security-policy" in home.headers
        assert "script-src 'self'" in home.headers["content-security-policy"]

        out = browser.submit("/signout", {}, page="/")
        assert out.status_code == 303
        assert "modelreg_session" not in browser.cookies
        assert browser.get("/", follow=False).status_code == 303


def test_a_bad_token_is_refused_with_a_reason(web_url: str) -> None:
    with Browser(web_url) as browser:
        page = browser.sign_in("mrt_not-a-real-token")
        assert page.status_code == 401
        assert 'data-testid="signin-problem"' in page.text
        assert "modelreg_session" not in browser.cookies


def test_an_altered_or_foreign_session_cookie_is_no_session(web_url: str) -> None:
    with Browser(web_url) as browser:
        browser.sign_in(credential_for(ALICE))
        sealed = browser.cookies["modelreg_session"]
        browser.cookies["modelreg_session"] = sealed[:-4] + (
            "AAAA" if not sealed.endswith("AAAA") else "BBBB"
        )
        page = browser.get("/", follow=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/signin")


def test_posts_without_a_matching_csrf_token_are_refused(
    signed_in: SignedIn, web_url: str, stack: LocalStack, tmp_path: Path
) -> None:
    model = f"web-ui/{unique('csrf')}"
    with client_for(stack, tmp_path / "cache") as registry:
        registry.create_model(model)
        registry.seal_version(registry.create_version(model, metrics={"accuracy": 0.5}).name)
    browser = signed_in()
    path = f"/n/{model.replace('/', '/m/', 1)}/v/1/submit"
    missing = browser.post(path, {"comment": "no token"})
    assert missing.status_code == 403
    assert "form token" in missing.text
    wrong = browser.post(path, {"csrf_token": "x" * 43, "comment": "forged"})
    assert wrong.status_code == 403
    # A token from another browser does not match this browser's cookie.
    with Browser(web_url) as other:
        foreign = other.csrf_token()
    assert browser.post(path, {"csrf_token": foreign}).status_code == 403
    # Another site's page posting with a valid token (it cannot have one, but still): Origin.
    good = browser.csrf_token(f"/n/{model.replace('/', '/m/', 1)}/v/1")
    cross = browser.post(path, {"csrf_token": good}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    # Sign-in is protected too (login CSRF).
    with Browser(web_url) as fresh:
        assert fresh.post("/signin", {"token": credential_for(ALICE)}).status_code == 403
    with client_for(stack, tmp_path / "cache") as registry:
        assert registry.get_version(f"{model}/1").reviews == []  # nothing happened
    accepted = browser.post(path, {"csrf_token": good, "comment": "with the token"})
    assert accepted.status_code == 303


_TAG = re.compile(r"<(script|img|a|iframe|svg|object)\b[^>]*>", re.IGNORECASE)


def assert_inert(html: str) -> None:
    """No element runs what a user wrote: scripts are ours, no handler attributes, no js: URLs."""
    for tag in _TAG.finditer(html):
        text = tag.group(0)
        assert not re.search(r"\son\w+\s*=", text, re.IGNORECASE), text
        assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", text, re.IGNORECASE), text
        if tag.group(1).lower() == "script":
            assert text in ('<script type="module" src="/static/app.js">',) or text.startswith(
                '<script type="application/json"'
            ), text
    assert SCRIPT not in html
    assert "<img src=x" not in html


def test_script_and_javascript_payloads_never_run(
    signed_in: SignedIn, stack: LocalStack, tmp_path: Path
) -> None:
    model_id = unique("xss")
    model = f"web-ui/{model_id}"
    card = f'# Card {SCRIPT}\n\n[click]({JS_LINK}) <img src=x onerror=alert(1)> <a href="{JS_LINK}">raw</a>\n'
    with client_for(stack, tmp_path / "cache") as registry:
        registry.create_model(
            model, display_name=SCRIPT, description=f"{SCRIPT} [x]({JS_LINK})", owner=SCRIPT, model_card=card
        )
        version = registry.create_version(
            model,
            description=SCRIPT,
            params={SCRIPT: JS_LINK, "nested": {"deep": SCRIPT}},
            metrics={"accuracy": 0.5},
            tags={"note": SCRIPT, "link": JS_LINK},
            lineage={"training_run_url": JS_LINK, "training_run_id": SCRIPT, "source_repository": JS_LINK},
        )
        registry.seal_version(version.name)
        registry.submit_for_review(version.name, comment=f"{SCRIPT} {JS_LINK}")
        registry.set_alias(model, "staging", 1)
    browser = signed_in()
    base = f"/n/web-ui/m/{model_id}"
    pages = {
        "namespace": browser.get("/n/web-ui?filter=" + f'model_id = "{model_id}"'),
        "model": browser.get(f"{base}?columns=params.nested.deep,tags.note,tags.link"),
        "version": browser.get(f"{base}/v/1"),
        "audit": browser.get(f"/audit?model={model}"),
        "home": browser.get("/"),
    }
    for name, page in pages.items():
        assert page.status_code == 200, (name, page.text[:1000])
        assert_inert(page.text)
    model_page, version_page = pages["model"].text, pages["version"].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in model_page  # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; javascript:alert(1)" in version_page  # the comment
    assert 'href="javascript' not in version_page
