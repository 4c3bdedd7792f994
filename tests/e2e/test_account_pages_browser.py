"""The signed-in user's own pages in a real browser (Debian chromium driven by playwright)
against ``charter serve``: the connected-applications page revokes a client obtained through a
real OAuth flow (its next MCP call gets 401), and the admin console disables a client, rotates
the signing key and reads the audit trail through a filter (S93, S94).

Screenshots are kept under ``test-artifacts/screenshots`` (gitignored; ``$CHARTER_TEST_ARTIFACTS``
chooses another folder), like those of the consent and upstream sign-in browser tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.chromium import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_NAME,
    authorize_url,
    callback_server,
    register,
)

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():
    pytest.skip(
        "chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

#: How long the MCP server may keep accepting a revoked token (its revocation poll is 1 s).
REVOCATION_BOUND_SECONDS = 10.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e"}},
}


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def screenshots() -> Path:
    root = Path(os.environ.get("CHARTER_TEST_ARTIFACTS") or ARTIFACTS)
    directory = root / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def charter(tmp_path: Path) -> Iterator[CharterProcess]:
    with run_charter(tmp_path / "data") as running:
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


def shoot(page: Any, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.exists() and path.stat().st_size > 0
    return path


def mcp_status(charter: CharterProcess, access_token: str) -> int:
    answer = httpx.post(
        charter.mcp_url,
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json, text/event-stream",
        },
        json=INITIALIZE,
        timeout=30,
    )
    return answer.status_code


def connect_client(charter: CharterProcess, page: Any, password: str) -> tuple[str, str]:
    """A real OAuth flow in the browser (sign in as admin, approve); the client id and its
    access token."""
    with callback_server() as callback:
        client_id = register(charter, callback.url)
        url, _state, verifier = authorize_url(charter, client_id, callback.url, "mcp notes:read")
        page.goto(url)
        page.fill("#username", "admin")
        page.fill("#password", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("form[data-form=consent]")
        page.click("#approve")
        assert callback.arrived.wait(30), "the browser never reached the client's redirect URI"
        code = callback.hits[-1]["code"]
        token = httpx.post(
            charter.base_url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": callback.url,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": charter.mcp_url,
            },
        )
    assert token.status_code == 200, token.text
    access_token: str = token.json()["access_token"]
    return client_id, access_token


def test_s94_connected_applications_revoke_in_chromium(
    charter: CharterProcess, browser: Any, screenshots: Path
) -> None:
    password = charter.admin_password
    assert password is not None
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    client_id, access_token = connect_client(charter, page, password)
    assert mcp_status(charter, access_token) == 200

    page.goto(charter.base_url + "/")
    page.click("#applications-link")
    page.wait_for_selector("#applications")
    row = page.locator(f"tr.application[data-client-id='{client_id}']")
    assert row.locator(".client-name").inner_text() == CLIENT_NAME
    assert "notes:read" in row.inner_text()
    assert charter.mcp_url in row.inner_text()
    shoot(page, screenshots, "connected-applications")

    row.locator("button.revoke").click()
    page.wait_for_selector("form[data-form=confirm-revoke-application]")
    assert page.locator(".client-name").inner_text() == CLIENT_NAME
    shoot(page, screenshots, "connected-applications-confirm")
    page.click("#confirm-revoke")
    page.wait_for_selector("#notice")
    assert page.locator(f"tr.application[data-client-id='{client_id}']").count() == 0
    revoked_at = time.monotonic()
    shoot(page, screenshots, "connected-applications-revoked")

    status = mcp_status(charter, access_token)
    while status != 401 and time.monotonic() - revoked_at < REVOCATION_BOUND_SECONDS:
        time.sleep(0.2)
        status = mcp_status(charter, access_token)
    elapsed = time.monotonic() - revoked_at
    print(f"revoked token refused after {elapsed:.2f} s")
    assert status == 401, f"the revoked token still worked after {elapsed:.1f} s"
    context.close()


def test_s93_admin_console_in_chromium(
    charter: CharterProcess, browser: Any, screenshots: Path
) -> None:
    password = charter.admin_password
    assert password is not None
    flow = browser.new_context()
    client_id, access_token = connect_client(charter, flow.new_page(), password)
    flow.close()
    assert mcp_status(charter, access_token) == 200

    # A browser that is not signed in is sent to sign in, and comes back to the console.
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(charter.base_url + "/admin/clients")
    page.wait_for_selector("form[data-form=account-sign-in]")
    shoot(page, screenshots, "console-sign-in")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("#account-sign-in-form button[type=submit]")
    page.wait_for_selector("#clients")
    assert page.url == charter.base_url + "/admin/clients"
    shoot(page, screenshots, "console-clients")

    # Disable the client: a confirmation first, then its token stops working.
    row = page.locator(f"tr.client[data-client-id='{client_id}']")
    assert row.locator(".status").inner_text() == "enabled"
    row.locator("button[data-action=client-disable]").click()
    page.wait_for_selector("form[data-form=console-confirm]")
    assert "Disable client" in page.locator("#question").inner_text()
    shoot(page, screenshots, "console-confirm-disable")
    page.click("#confirm")
    page.wait_for_selector("#notice")
    disabled_at = time.monotonic()
    row = page.locator(f"tr.client[data-client-id='{client_id}']")
    assert row.locator(".status").inner_text() == "disabled"
    status = mcp_status(charter, access_token)
    while status != 401 and time.monotonic() - disabled_at < REVOCATION_BOUND_SECONDS:
        time.sleep(0.2)
        status = mcp_status(charter, access_token)
    print(f"token of the disabled client refused after {time.monotonic() - disabled_at:.2f} s")
    assert status == 401

    # Rotate the signing key.
    page.click("#nav-keys")
    page.wait_for_selector("#keys")
    keys_before = page.locator("tr.key").count()
    page.click("button[data-action=keys-rotate]")
    page.wait_for_selector("form[data-form=console-confirm]")
    page.click("#confirm")
    page.wait_for_selector("#notice")
    assert page.locator("tr.key").count() == keys_before + 1
    assert "pending" in page.locator("tr.key").first.locator(".status").inner_text()
    shoot(page, screenshots, "console-keys-rotated")
    jwks = httpx.get(charter.base_url + "/jwks.json").json()
    assert len(jwks["keys"]) == keys_before + 1

    # The audit trail, filtered to the console's disabling.
    page.click("#nav-audit")
    page.wait_for_selector("#audit-filter")
    page.fill("#filter-event", "client_disabled")
    page.fill("#filter-since", "1h")
    page.click("#apply-filter")
    page.wait_for_selector("#events")
    events = page.locator("tr.event")
    assert events.count() == 1
    assert events.first.locator(".event-name").inner_text() == "client_disabled"
    assert client_id in events.first.inner_text()
    assert "actor_username=admin" in events.first.inner_text()
    shoot(page, screenshots, "console-audit-filtered")
    context.close()
