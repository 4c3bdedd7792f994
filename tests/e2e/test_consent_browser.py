"""A real browser (Debian chromium driven by playwright) through login and consent.

``charter serve`` runs as a subprocess; the client's redirect URI is a tiny loopback server that
records what the browser lands on. A screenshot of the consent page is kept under
``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser_flow import authorize_params, parse_forms, pkce_pair
from tests.support.charter_process import CharterProcess, run_charter
from tests.support.chromium import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_NAME,
    authorize_url,
    callback_server,
    register,
)
from tests.support.factories import create_client, create_user

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    pytest.skip(
        "chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def charter(tmp_path: Path) -> Iterator[CharterProcess]:
    with run_charter(tmp_path / "data", one_time_admin=True) as running:
        yield running


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


def test_login_consent_approve_and_deny_in_chromium(charter: CharterProcess, browser: Any) -> None:
    password = charter.admin_password
    assert password is not None
    with callback_server() as callback:
        client_id = register(charter, callback.url)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)

        url, state, verifier = authorize_url(charter, client_id, callback.url, "mcp notes:read")
        page.goto(url)
        assert page.locator("form[data-form=login]").is_visible()
        page.fill("#username", "Admin")  # names ignore case
        page.fill("#password", password)
        page.click("#login-form button[type=submit]")

        # The first admin's password is one-time: the browser must choose its own first.
        page.wait_for_selector("form[data-form=change-password]")
        page.fill("#new_password", "chromium's own password")
        page.fill("#new_password_confirm", "chromium's own passw0rd")
        page.click("#password-form button[type=submit]")
        page.wait_for_selector(".message")
        assert "differ" in page.locator(".message").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "change-password-page.png"), full_page=True)
        page.fill("#new_password", "chromium's own password")
        page.fill("#new_password_confirm", "chromium's own password")
        page.click("#password-form button[type=submit]")

        page.wait_for_selector("form[data-form=consent]")
        assert page.locator(".client-name").inner_text() == CLIENT_NAME
        redirect_host = page.locator(".redirect-host").inner_text()
        assert "127.0.0.1" in redirect_host
        scopes = page.locator("ul.scopes").inner_text()
        assert "mcp" in scopes
        assert "notes:read" in scopes
        assert "notes:write" not in scopes
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "consent-page.png"), full_page=True)

        page.click("#approve")
        assert callback.arrived.wait(30), "the browser never reached the client's redirect URI"
        page.wait_for_selector("#done")
        landed = callback.hits[-1]
        assert page.url.startswith(callback.url)
        assert landed["state"] == state
        assert landed["iss"] == charter.base_url
        assert landed["code"]
        assert "error" not in landed

        # The code the browser carried works at the token endpoint.
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
        assert token.json()["scope"].split() == ["mcp", "notes:read"]

        # Deny: a request for more scope shows the consent page again (already signed in).
        callback.arrived.clear()
        url, state, _verifier = authorize_url(charter, client_id, callback.url, "mcp notes:write")
        page.goto(url)
        page.wait_for_selector("form[data-form=consent]")
        assert "notes:write" in page.locator("ul.scopes").inner_text()
        page.click("#deny")
        assert callback.arrived.wait(30)
        denied = callback.hits[-1]
        assert denied["error"] == "access_denied"
        assert denied["state"] == state
        assert denied["iss"] == charter.base_url
        assert "code" not in denied
        context.close()


#: A redirect host too long for one line of the consent card on a phone.
LONG_HOST = "aratherlongcallbackhostnamewithnoplacetobreakit.applications.example.net"
#: Reports every word of ordinary text drawn on more than one line, and anything wider than
#: the page (URLs and ids must wrap inside it).
LAYOUT_PROBE = """() => {
  const split = [];
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("code, .redirect-host, .client-name, button, form > input"))
      continue;
    for (const match of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
      if (lines.size > 1) split.push(match[0]);
    }
  }
  const main = document.querySelector("main");
  const padding = parseFloat(getComputedStyle(main).paddingRight);
  const right = main.getBoundingClientRect().right - padding;
  const wide = [...main.querySelectorAll("*")]
    .filter((element) => element.getBoundingClientRect().right > right + 0.5)
    .map((element) => element.outerHTML.slice(0, 80));
  return {split, wide, scroll: document.documentElement.scrollWidth, width: innerWidth};
}"""


async def consent_html(client: httpx.AsyncClient, params: dict[str, Any], username: str) -> str:
    """The consent page's HTML after logging in as ``username`` (the factories' password)."""
    login = await client.get("/authorize", params=params)
    [form] = [form for form in parse_forms(login.text) if form.attrs.get("data-form") == "login"]
    fields = {**dict(form.fields), "username": username, "password": "correct horse battery"}
    signed_in = await client.post(form.attrs["action"], data=fields)
    assert signed_in.status_code == 303, signed_in.text
    consent = await client.get(signed_in.headers["location"])
    assert 'data-form="consent"' in consent.text
    return consent.text


async def test_consent_page_keeps_words_whole_and_wraps_long_urls(
    auth_server: Any, as_client: httpx.AsyncClient
) -> None:
    """On a phone-wide screen ordinary text breaks between words only, while a long redirect
    host and ids wrap inside the card instead of widening the page (issue 13: a word split in
    the middle)."""
    create_user(auth_server, "someone-with-a-long-name")
    client, _ = create_client(
        auth_server,
        redirect_uris=[f"https://{LONG_HOST}/oauth/callback"],
        client_name="A perfectly ordinary application name",
    )
    redirect_uri = f"https://{LONG_HOST}/oauth/callback"
    params = authorize_params(client.client_id, redirect_uri, pkce_pair()[1])
    html = await consent_html(as_client, params, "someone-with-a-long-name")
    assert LONG_HOST in html

    def measure() -> dict[str, Any]:
        with sync_api.sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = launched.new_page(viewport={"width": 360, "height": 800})
                page.set_content(html)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "consent-page-narrow.png"), full_page=True)
                result: dict[str, Any] = page.evaluate(LAYOUT_PROBE)
                return result
            finally:
                launched.close()

    layout = await asyncio.to_thread(measure)
    assert layout["split"] == [], layout
    assert layout["wide"] == [], layout
    assert layout["scroll"] <= layout["width"], layout
