"""Signing out over a real socket: from the consent page (back to the same request's login, then
continuing as another user) and at ``/logout`` (GET confirms, POST with its CSRF token signs
out); the old session cookie is worthless afterwards; forged posts change nothing (S51, S53)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import select

from authserver.browser.login import create_login_session
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import AuthorizationCode, LoginSession, User
from tests.support.factories import create_user
from tests.support.live import free_port, serve_app
from tests.support.live_browser import (
    LiveServer,
    decide,
    form_of,
    has_form,
    live_server,
    log_in,
    redirected_to_client,
    sign_in_and_approve,
)
from tests.support.pages import assert_no_third_party_resources, assert_page_headers

SESSION = "charter_session"


@pytest.fixture
def live(make_server: Callable[..., AuthServer]) -> Iterator[LiveServer]:
    with live_server(make_server) as running:
        yield running


def user_id(live: LiveServer, username: str) -> str:
    with live.server.database.transaction() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def clears_session_cookie(response: httpx.Response) -> bool:
    """Whether the response tells the browser to drop the login cookie."""
    return any(
        header.startswith(f"{SESSION}=") and "Max-Age=0" in header
        for header in response.headers.get_list("set-cookie")
    )


async def replay(live: LiveServer, cookie: str, params: dict[str, str]) -> httpx.Response:
    """``GET /authorize`` from a fresh client that sends only the old session cookie."""
    async with httpx.AsyncClient(base_url=live.base_url, cookies={SESSION: cookie}) as attacker:
        return await attacker.get("/authorize", params=params)


async def test_s51_sign_out_on_the_consent_page_then_continue_as_another_user(
    live: LiveServer,
) -> None:
    async with live.browser() as browser:
        page = await browser.get("/authorize", params=live.params(state="same-request"))
        _, login_fields = form_of(page, "login")
        consent = await browser.get((await log_in(browser, page, "alice")).headers["location"])
        assert "Signed in as alice" in consent.text
        alice_cookie = browser.cookies.get(SESSION)
        assert alice_cookie
        # A second consent page of alice's, open in another tab of the same browser.
        other_tab = await browser.get("/authorize", params=live.params(prompt="consent"))
        assert has_form(other_tab, "consent")

        action, fields = form_of(consent, "signout")
        assert fields["request_id"] == login_fields["request_id"]
        signed_out = await browser.post(action, data=fields)
        assert signed_out.status_code == 303
        assert clears_session_cookie(signed_out)
        assert browser.cookies.get(SESSION) is None
        assert live.login_sessions() == 0
        [event] = live.events("logout")
        assert (event.subject, event.client_id) == (user_id(live, "alice"), live.client_id)
        assert event.detail == {"via": "consent_page"}

        # Back to the login page of the same pending request.
        again = await browser.get(signed_out.headers["location"])
        _, fields = form_of(again, "login")
        assert fields["request_id"] == login_fields["request_id"]
        # The other tab's consent form died with alice's login.
        tab_action, tab_fields = form_of(other_tab, "consent")
        refused = await browser.post(tab_action, data={**tab_fields, "decision": "approve"})
        assert refused.status_code == 403
        assert live.codes() == 0

        consent = await browser.get((await log_in(browser, again, "bob")).headers["location"])
        assert "Signed in as bob" in consent.text
        assert "Signed in as alice" not in consent.text
        location = await decide(browser, consent, "approve")
    assert location.params["state"] == "same-request"
    bob = user_id(live, "bob")
    with live.server.database.transaction() as session:
        assert session.scalars(select(AuthorizationCode.subject)).one() == bob
    # alice's old cookie, sent again, is not a login.
    replayed = await replay(live, alice_cookie, live.params())
    assert has_form(replayed, "login")


async def test_s51_sign_out_at_logout_and_the_old_cookie_is_worthless(live: LiveServer) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        cookie = browser.cookies.get(SESSION)
        assert cookie
        assert redirected_to_client(await browser.get("/authorize", params=live.params()))

        confirm = await browser.get("/logout")
        assert "alice" in confirm.text
        assert confirm.headers["cache-control"] == "no-store"
        assert confirm.headers["x-frame-options"] == "DENY"
        action, fields = form_of(confirm, "logout")
        done = await browser.post(action, data=fields)
        assert done.status_code == 303
        assert clears_session_cookie(done)
        assert live.login_sessions() == 0
        [event] = live.events("logout")
        assert event.subject == user_id(live, "alice")
        assert event.detail == {"via": "logout_page"}

        signed_out = await browser.get(done.headers["location"])
        assert signed_out.status_code == 200
        assert 'id="signed-out"' in signed_out.text
        assert not has_form(signed_out, "logout")
        # The remembered consent stays, but the next request asks to sign in first.
        assert has_form(await browser.get("/authorize", params=live.params()), "login")
    # The old cookie value, replayed from anywhere, is not a login.
    assert has_form(await replay(live, cookie, live.params()), "login")
    silent = redirected_to_client(await replay(live, cookie, live.params(prompt="none")))
    assert silent.params["error"] == "login_required"
    async with httpx.AsyncClient(base_url=live.base_url, cookies={SESSION: cookie}) as old:
        page = await old.get("/logout")
        assert 'id="signed-out"' in page.text
        # Posting the old form again ends nothing and records nothing.
        again = await old.post("/logout", data=fields)
        assert again.status_code == 303
    assert len(live.events("logout")) == 1


async def test_s51_logout_post_without_a_valid_csrf_token_changes_nothing(
    live: LiveServer,
) -> None:
    async with live.browser() as browser, live.browser() as other:
        await sign_in_and_approve(live, browser, "alice")
        await sign_in_and_approve(live, other, "bob")
        _, other_fields = form_of(await other.get("/logout"), "logout")
        _, fields = form_of(await browser.get("/logout"), "logout")
        sessions = live.login_sessions()
        forged_forms: list[dict[str, str]] = [
            {"request_id": "x"},  # no csrf_token
            {"csrf_token": ""},
            {"csrf_token": "x" * 64},
            {"csrf_token": fields["csrf_token"][:-1]},
            other_fields,  # bob's token does not fit alice's session
        ]
        for forged in forged_forms:
            refused = await browser.post("/logout", data=forged)
            assert refused.status_code == 403, forged
            assert "set-cookie" not in refused.headers
            assert "location" not in refused.headers
        duplicated = await browser.post(
            "/logout",
            content=f"csrf_token={fields['csrf_token']}&csrf_token={fields['csrf_token']}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert duplicated.status_code == 403
        not_a_form = await browser.post("/logout", json=fields)
        assert not_a_form.status_code == 400
        assert live.login_sessions() == sessions
        assert live.events("logout") == []
        # Still signed in: the remembered consent gives a code at once.
        assert redirected_to_client(await browser.get("/authorize", params=live.params()))
        # The consent page's sign-out form needs its request's CSRF token and browser too.
        consent = await browser.get("/authorize", params=live.params(prompt="consent"))
        action, consent_fields = form_of(consent, "signout")
        forged_consent = {**consent_fields, "csrf_token": "z" * 43}
        assert (await browser.post(action, data=forged_consent)).status_code == 403
        from_elsewhere = await other.post(action, data=consent_fields)
        assert from_elsewhere.status_code == 400  # another browser: the request is not its own
        assert "set-cookie" not in from_elsewhere.headers
        assert live.login_sessions() == sessions
        assert live.events("logout") == []
        # The genuine forms still work afterwards.
        assert (await browser.post(action, data=consent_fields)).status_code == 303
        assert live.login_sessions() == sessions - 1


async def test_s51_get_logout_never_signs_out(live: LiveServer) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        _, fields = form_of(await browser.get("/logout"), "logout")
        for params in ({}, {"csrf_token": fields["csrf_token"]}, {"confirm": "yes"}):
            page = await browser.get("/logout", params=params)
            assert page.status_code == 200
            assert "set-cookie" not in page.headers
            assert has_form(page, "logout")
        assert live.login_sessions() == 1
        assert live.events("logout") == []
        assert redirected_to_client(await browser.get("/authorize", params=live.params()))


async def test_s51_racing_sign_outs_end_the_session_once(live: LiveServer) -> None:
    async with live.browser() as browser:
        await sign_in_and_approve(live, browser, "alice")
        cookie = browser.cookies.get(SESSION)
        assert cookie
        _, fields = form_of(await browser.get("/logout"), "logout")
    clients = [
        httpx.AsyncClient(base_url=live.base_url, cookies={SESSION: cookie}, timeout=30)
        for _ in range(4)
    ]
    try:
        answers = await asyncio.gather(*(c.post("/logout", data=fields) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    assert [answer.status_code for answer in answers] == [303] * 4
    assert live.login_sessions() == 0
    assert len(live.events("logout")) == 1


async def test_s51_sign_out_clears_the_host_prefixed_cookie_on_https(
    make_server: Callable[..., AuthServer],
) -> None:
    """On an https issuer the cookie is ``__Host-charter_session``; it is removed with the same
    Secure flag and path (a browser ignores a ``__Host-`` removal without them)."""
    port = free_port()
    server = make_server(issuer=f"https://127.0.0.1:{port}")
    carol = create_user(server, "carol")
    with server.database.transaction() as session:
        cookie = create_login_session(session, server, carol.id)
    name = "__Host-charter_session"

    with serve_app(create_app(server), port=port) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            headers = {"cookie": f"{name}={cookie}"}
            _, fields = form_of(await http.get("/logout", headers=headers), "logout")
            done = await http.post("/logout", data=fields, headers=headers)
    assert done.status_code == 303
    [removal] = done.headers.get_list("set-cookie")
    parts = [part.strip() for part in removal.split(";")]
    assert parts[0] in (f"{name}=", f'{name}=""')
    assert {"Max-Age=0", "Path=/", "Secure", "HttpOnly", "SameSite=lax"} <= set(parts)
    with server.database.transaction() as session:
        assert session.scalars(select(LoginSession)).all() == []


async def test_s52_logout_pages_headers(live: LiveServer) -> None:
    async with live.browser() as browser:
        signed_out = await browser.get("/logout")
        await sign_in_and_approve(live, browser, "alice")
        confirm = await browser.get("/logout")
        consent = await browser.get("/authorize", params=live.params(prompt="consent"))
        action, fields = form_of(consent, "signout")
        after = await browser.post(action, data=fields)
    for page in (signed_out, confirm):
        assert page.status_code == 200
        assert_page_headers(page)
        assert_no_third_party_resources(page.text)
    assert after.status_code == 303
    assert after.headers["cache-control"] == "no-store"
    assert not any(name.lower().startswith("access-control-") for name in after.headers)
