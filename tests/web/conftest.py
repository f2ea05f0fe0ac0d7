"""Fixtures of the web UI tests: the web service on the session's stack, and signed-in clients.

`web_url` is a web service (`python -m modelreg_web`, a real process) on a free port, talking to
the session stack's services. Browser tests (Playwright) sign in through /signin with a token
from `tests.support.credential_for(principal, role, namespace)` (ALICE is a global admin);
HTTP tests use `signed_in(...)`, a `Browser` already signed in as a principal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from modelreg_api.addresses import ARTIFACT_ADDR_ENV, METADATA_ADDR_ENV
from modelreg_local.stack import LocalStack, WebProcess, web_environment
from modelreg_local.stores import free_port

from tests.support import ALICE, credential_for
from tests.web.browser import Browser
from tests.web.sample import Histories, make_histories

WebFactory = Callable[..., WebProcess]
SignedIn = Callable[..., Browser]


@pytest.fixture(scope="session")
def start_web(stack: LocalStack) -> Iterator[WebFactory]:
    """Start a web service on a free port; keyword arguments override its environment (e.g.
    MODELREG_METADATA_ADDR of a dead port). Each is stopped at the end of the session."""
    started: list[WebProcess] = []

    def start(*, wait: bool = True, **overrides: str) -> WebProcess:
        address = f"127.0.0.1:{free_port()}"
        base = {
            **os.environ,
            METADATA_ADDR_ENV: stack.addresses.metadata,
            ARTIFACT_ADDR_ENV: stack.addresses.artifacts,
            "PYTHONUNBUFFERED": "1",
            "MODELREG_LOG_LEVEL": "INFO",
        }
        env = {**web_environment(base, stack.data_root, address), **overrides}
        web = WebProcess(f"web-{len(started) + 1}", address=address, env=env, log_dir=stack.log_dir)
        started.append(web)
        web.start()
        if wait:
            web.wait_healthy()
        return web

    yield start
    for web in started:
        web.stop()


@pytest.fixture(scope="session")
def web_service(start_web: WebFactory) -> WebProcess:
    return start_web()


@pytest.fixture(scope="session")
def web_url(web_service: WebProcess) -> str:
    """`http://127.0.0.1:<port>` of the session's web service."""
    return web_service.url


@pytest.fixture
def signed_in(web_url: str) -> Iterator[SignedIn]:
    """`signed_in(principal=ALICE, role="admin", namespace="-")`: a Browser signed in as that
    principal with a token of that role (closed after the test)."""
    browsers: list[Browser] = []

    def sign_in(principal: str = ALICE, role: str = "admin", namespace: str = "-") -> Browser:
        browser = Browser(web_url)
        browsers.append(browser)
        response = browser.sign_in(credential_for(principal, role, namespace))
        assert response.status_code == 303, response.text[:500]
        return browser

    yield sign_in
    for browser in browsers:
        browser.close()


@pytest.fixture(scope="session")
def histories(stack: LocalStack) -> Histories:
    """Ten versions with 5,000-step `loss` histories and one with 2,000 (tests/web/sample.py)."""
    return make_histories(stack)
