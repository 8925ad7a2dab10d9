"""The sign-in page's "Sign in with SSO" (issue 17, point 5; docs/sso.md) in real Chromium: shown
only when an organisation has an identity provider, and a click goes to the provider (a real one
on loopback, tests/oidc_provider.py) and comes back signed in, on the page asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import new_context, new_page, wait_connected
from .oidc_provider import Provider
from .support import Server

pytestmark = pytest.mark.browser


@pytest.fixture
def idp() -> Iterator[Provider]:
    provider = Provider().start()
    yield provider
    provider.stop()


async def test_sign_in_with_sso_from_the_login_page(server: Server, idp: Provider, browser: Browser) -> None:
    context = await new_context(browser)
    watched = await new_page(context)
    page = watched.page
    async with page.expect_response(f"{server.url}/v1/auth/sso") as asked:
        await page.goto(f"{server.url}/login")
    assert (await (await asked.value).json()) == {"providers": []}
    await expect(page.get_by_role("heading", name="Sign in to Spacechat")).to_be_visible()
    # No organisation has a provider yet: no button that would lead nowhere.
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("link", name="Sign in with SSO")).to_have_count(0)

    idp.client.redirect_prefix = f"{server.url}/v1/auth/sso/callback"
    idp.user = {"sub": "ui-1", "email": "una@example.com", "email_verified": True, "name": "Una SSO", "groups": ["ops"]}
    settings = {
        "issuer": idp.issuer,
        "client_id": idp.client.client_id,
        "client_secret": idp.client.client_secret,
        "role_mapping": [{"value": "ops", "role": "operator"}],
    }
    with httpx.Client(base_url=server.url, headers=server.auth) as owner:
        saved = await asyncio.to_thread(owner.put, "/v1/org/sso", json=settings)
    assert saved.status_code == 200, saved.text

    await page.goto(f"{server.url}/login?next=%2Fsettings")
    await page.get_by_role("link", name="Sign in with SSO").click()
    await page.wait_for_url(f"{server.url}/settings")
    await expect(page.locator(".sidebar-foot .me")).to_have_text("Una SSO")
    await wait_connected(page)
    me = await page.evaluate("fetch('/v1/me').then((r) => r.json())")
    assert me["user"]["email"] == "una@example.com" and me["user"]["role"] == "operator"
    await watched.assert_clean()
    await context.close()
