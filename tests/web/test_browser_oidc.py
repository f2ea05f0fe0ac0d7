"""In a real headless Chromium: "Sign in with ..." through an OpenID Connect provider on another
site (`localhost`, while the UI is on 127.0.0.1), so the browser's SameSite rules apply as with a
real provider: the Lax flow cookie comes back on the provider's redirect, and the Strict session
cookie is sent from the "Signed in" page on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack, WebProcess
from playwright.async_api import Browser

from tests.chromium import new_context, open_tab
from tests.integration.isolated import Isolated
from tests.web.conftest import WebFactory
from tests.web.oidc_provider import OidcProvider, trusting_metadata

pytestmark = pytest.mark.integration

SUBJECT = "erin@example.test"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(
        client_id="modelreg-web-ui", secret="another-s3cret", subject=SUBJECT, host="localhost"
    ) as idp:
        yield idp


@pytest.fixture(scope="module")
def trusting(
    stack: LocalStack, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Isolated]:
    service = trusting_metadata(stack, provider, tmp_path_factory.mktemp("oidc-browser"))
    yield service
    service.stop()


@pytest.fixture(scope="module")
def oidc_web(start_web: WebFactory, provider: OidcProvider, trusting: Isolated) -> WebProcess:
    return start_web(
        MODELREG_METADATA_ADDR=trusting.address,
        MODELREG_WEB_OIDC_ISSUER=provider.issuer,
        MODELREG_WEB_OIDC_CLIENT_ID=provider.client_id,
        MODELREG_WEB_OIDC_CLIENT_SECRET=provider.secret,
        MODELREG_WEB_OIDC_NAME="Example Login",
    )


async def test_clicking_sign_in_with_the_provider_signs_in(
    chromium: Browser, oidc_web: WebProcess, screenshots: Path
) -> None:
    tab = await open_tab(await new_context(chromium, oidc_web.url), screenshots)
    try:
        await tab.page.goto("/audit")  # not signed in: to /signin?next=/audit
        await tab.page.wait_for_url(lambda url: "/signin" in url)
        button = tab.page.get_by_test_id("signin-oidc")
        assert (await button.inner_text()).strip() == "Sign in with Example Login"
        await tab.shoot("signin-with-provider")
        await button.click()
        await tab.page.wait_for_url(lambda url: url.endswith("/audit"))
        principal = tab.page.get_by_test_id("principal")
        assert await principal.inner_text() == f"user:{SUBJECT}"
        await tab.shoot("signed-in-through-provider")
        cookies = {c["name"]: c for c in await tab.page.context.cookies()}
        assert cookies["modelreg_session"]["sameSite"] == "Strict"
        assert "modelreg_oidc" not in cookies
        assert tab.page_errors == []
    finally:
        await tab.page.context.close()
