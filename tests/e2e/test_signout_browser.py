"""A real browser (Debian chromium driven by playwright) signs out: on the consent page, then
continues the same request as another user; then at ``/logout``. ``charter serve`` runs as a
subprocess; skipped when chromium or playwright is missing (see ``test_consent_browser``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.charter_process import CharterProcess, charter_env, run_charter
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, authorize_url, callback_server, register

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():
    pytest.skip(
        "chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

BOB_PASSWORD = "bob's chromium password"


@pytest.fixture
def charter(tmp_path: Path) -> Iterator[CharterProcess]:
    with run_charter(tmp_path / "data") as running:
        yield running


@pytest.fixture
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def add_user(charter: CharterProcess, name: str, password: str) -> None:
    done = subprocess.run(
        [*charter.admin_command, "users", "add", name, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=charter.env or charter_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def sign_in(page: Any, username: str, password: str) -> None:
    page.wait_for_selector("form[data-form=login]")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")


def test_sign_out_on_the_consent_page_and_at_logout_in_chromium(
    charter: CharterProcess, chromium: Any
) -> None:
    admin_password = charter.admin_password
    assert admin_password is not None
    add_user(charter, "bob", BOB_PASSWORD)
    with callback_server() as callback:
        client_id = register(charter, callback.url)
        context = chromium.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)

        url, state, _verifier = authorize_url(charter, client_id, callback.url, "mcp")
        page.goto(url)
        sign_in(page, "admin", admin_password)
        page.wait_for_selector("form[data-form=consent]")
        assert "Signed in as admin" in page.content()

        # Not you? Sign out: back to the same request's sign-in form, then on as bob.
        page.click("#sign-out")
        sign_in(page, "bob", BOB_PASSWORD)
        page.wait_for_selector("form[data-form=consent]")
        assert "Signed in as bob" in page.content()
        page.click("#approve")
        assert callback.arrived.wait(30), "the browser never reached the client's redirect URI"
        landed = callback.hits[-1]
        assert landed["state"] == state
        assert landed["code"]

        # /logout asks first, then signs the browser out.
        page.goto(charter.base_url + "/logout")
        page.wait_for_selector("form[data-form=logout]")
        assert page.locator(".username").inner_text() == "bob"
        page.click("#sign-out")
        page.wait_for_selector("#signed-out")
        assert not any(cookie["name"].endswith("charter_session") for cookie in context.cookies())

        # bob's consent is remembered, but the browser must sign in again.
        url, _state, _verifier = authorize_url(charter, client_id, callback.url, "mcp")
        page.goto(url)
        page.wait_for_selector("form[data-form=login]")
        context.close()
