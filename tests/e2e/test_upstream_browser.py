"""A real browser (Debian chromium driven by playwright) signs in to Charter through
node-oidc-provider: Charter's login page → "Sign in with Corp SSO" → the provider's own login
and consent pages → Charter's consent page → the MCP client's redirect URI with a code. The code
is redeemed and the official MCP Python SDK client calls ``whoami``, which names the provider's
user. Screenshots are kept under ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, authorize_url, callback_server, register
from tests.support.sdk_client import structured
from tests.support.upstream_deployment import PASSWORDS, federated_deployment

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    pytest.skip(
        "chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


async def whoami(mcp_url: str, access_token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {access_token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            return structured(await client.call_tool("whoami", {}))


def test_chromium_signs_in_through_node_oidc_provider(tmp_path: Path, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with federated_deployment(tmp_path) as (provider, charter), callback_server() as callback:
        client_id = register(charter, callback.url)
        page = browser.new_context().new_page()
        page.set_default_timeout(30_000)
        url, state, verifier = authorize_url(charter, client_id, callback.url, "mcp notes:read")
        page.goto(url)
        assert page.locator("form[data-form=login]").is_visible()  # passwords beside it
        page.screenshot(path=str(ARTIFACTS / "upstream-login-page.png"), full_page=True)
        page.click("a.provider[data-provider='Corp SSO']")

        page.wait_for_selector("input[name=login]")  # the provider's own login page
        assert page.url.startswith(provider.issuer)
        page.fill("input[name=login]", "jdoe")
        page.fill("input[name=password]", PASSWORDS["jdoe"])
        page.click("button[type=submit]")
        page.wait_for_selector("button[type=submit]")  # the provider's consent page
        assert page.url.startswith(provider.issuer)
        page.click("button[type=submit]")

        page.wait_for_selector("form[data-form=consent]")  # Charter's consent page
        assert page.url.startswith(charter.base_url)
        assert "Jane Doe (jdoe)" in page.content()
        page.screenshot(path=str(ARTIFACTS / "upstream-consent-page.png"), full_page=True)
        page.click("#approve")
        assert callback.arrived.wait(30), "the browser never reached the client's redirect URI"
        landed = callback.hits[-1]
        assert landed["state"] == state and landed["iss"] == charter.base_url and landed["code"]

        token = httpx.post(
            charter.base_url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": landed["code"],
                "redirect_uri": callback.url,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": charter.mcp_url,
            },
        )
        assert token.status_code == 200, token.text
        # Playwright's sync API runs an event loop in this thread: the SDK runs in another one.
        with ThreadPoolExecutor(1) as pool:
            access_token = token.json()["access_token"]
            me = pool.submit(asyncio.run, whoami(charter.mcp_url, access_token)).result(60)
    assert (me["username"], me["name"]) == ("jdoe", "Jane Doe")
    assert me["scopes"] == ["mcp", "notes:read"]
