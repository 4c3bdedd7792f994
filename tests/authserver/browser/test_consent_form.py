"""``prompt=consent`` (OpenID Connect Core §3.1.2.1) over a real socket: the consent page is
shown although a remembered consent covers the request; deny answers ``access_denied`` and keeps
the remembered consent; ``login consent`` asks for both; the metadata lists the prompt values."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from authserver.context import AuthServer
from authserver.storage.models import Consent
from tests.support.live_browser import (
    LiveServer,
    decide,
    has_form,
    live_server,
    log_in,
    redirected_to_client,
    sign_in_and_approve,
)


@pytest.fixture
def live(make_server: Callable[..., AuthServer]) -> Iterator[LiveServer]:
    with live_server(make_server) as running:
        yield running


async def test_prompt_consent_shows_the_page_despite_a_remembered_consent(
    live: LiveServer,
) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        remembered = await browser.get("/authorize", params=live.params())
        assert redirected_to_client(remembered).params["code"]
        codes = live.codes()

        forced = await browser.get("/authorize", params=live.params(prompt="consent", state="s1"))
        assert has_form(forced, "consent")
        assert "Signed in as alice" in forced.text
        assert live.codes() == codes  # nothing issued before the user decides
        location = await decide(browser, forced, "approve")
    assert location.params["state"] == "s1"
    assert location.params["iss"] == live.base_url
    assert location.params["code"]
    assert live.codes() == codes + 1


async def test_prompt_consent_deny_keeps_the_remembered_consent(live: LiveServer) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        assert live.live_consents() == 1
        codes = live.codes()

        forced = await browser.get("/authorize", params=live.params(prompt="consent", state="s2"))
        location = await decide(browser, forced, "deny")
        assert location.params["error"] == "access_denied"
        assert location.params["state"] == "s2"
        assert "code" not in location.params
        assert live.codes() == codes
        assert len(live.events("consent_denied")) == 1
        # The earlier approval still holds: the next ordinary request gets a code at once.
        assert live.count(Consent, Consent.revoked_at.is_not(None)) == 0
        later = await browser.get("/authorize", params=live.params())
        assert redirected_to_client(later).params["code"]
    assert live.codes() == codes + 1


async def test_prompt_consent_is_kept_through_the_login_form(live: LiveServer) -> None:
    """Not logged in: the login leads to the consent page, not straight back to the client."""
    async with live.browser() as first:
        await sign_in_and_approve(live, first, "alice")
    async with live.browser() as browser:
        # Without prompt=consent a new browser's login goes straight to the client.
        page = await browser.get("/authorize", params=live.params())
        redirected_to_client(await log_in(browser, page, "alice"))
    async with live.browser() as browser:
        page = await browser.get("/authorize", params=live.params(prompt="consent"))
        assert has_form(page, "login")
        answer = await log_in(browser, page, "alice")
        assert answer.headers["location"].startswith("/authorize/consent?")
        consent = await browser.get(answer.headers["location"])
        assert has_form(consent, "consent")
        # Reloading the consent page shows it again rather than skipping it.
        again = await browser.get(answer.headers["location"])
        assert has_form(again, "consent")
        location = await decide(browser, again, "approve")
    assert location.params["code"]


async def test_prompt_login_and_consent_together(live: LiveServer) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        codes = live.codes()
        page = await browser.get("/authorize", params=live.params(prompt="login consent"))
        assert has_form(page, "login") and not has_form(page, "consent")
        answer = await log_in(browser, page, "alice")
        consent = await browser.get(answer.headers["location"])
        assert has_form(consent, "consent")
        location = await decide(browser, consent, "approve")
    assert location.params["code"]
    assert live.codes() == codes + 1


@pytest.mark.parametrize("prompt", ["none consent", "consent none"])
async def test_prompt_none_with_consent_is_an_error(live: LiveServer, prompt: str) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        answer = await browser.get("/authorize", params=live.params(prompt=prompt))
    location = redirected_to_client(answer)
    assert location.params["error"] == "invalid_request"
    assert "code" not in location.params


async def test_metadata_lists_the_prompt_values(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            document = (await http.get(path)).json()
            assert document["prompt_values_supported"] == ["none", "login", "consent"]
