"""A one-time password must be changed on the browser login before it signs anyone in: the
change page, its errors, its binding to the browser and request, its expiry and its races,
over a real socket with httpx posting the forms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from authserver.browser.password_change import PASSWORD_CHANGE_TTL
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import AuditEvent, LoginSession, User
from tests.support.browser_flow import (
    authorize_params,
    authorize_with_login,
    parse_forms,
    pkce_pair,
)
from tests.support.clock import Clock
from tests.support.factories import create_client, create_user
from tests.support.live import free_port, serve_app

ONE_TIME = "one-time-Pa55word"
NEW_PASSWORD = "my own passphrase"
REDIRECT = "http://127.0.0.1:5555/callback"


@dataclass
class Live:
    """A server on a real socket with one static client and the flagged user ``admin``."""

    server: AuthServer
    base_url: str
    client_id: str
    user_id: str
    clock: Clock

    def user(self) -> User:
        with self.server.database.transaction() as session:
            row = session.get(User, self.user_id)
            assert row is not None
            session.expunge(row)
            return row


@pytest.fixture
def live(make_server: Callable[..., AuthServer]) -> Iterator[Live]:
    port = free_port()
    clock = Clock()
    server = make_server(clock=clock, issuer=f"http://127.0.0.1:{port}")
    user = create_user(server, "admin", ONE_TIME, must_change_password=True)
    client, _ = create_client(server, redirect_uris=["http://127.0.0.1/callback"])
    with serve_app(create_app(server), port=port) as base_url:
        yield Live(server, base_url, client.client_id, user.id, clock)


@asynccontextmanager
async def browser(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
        yield client


def form_of(page: httpx.Response, kind: str) -> tuple[str, dict[str, str]]:
    forms = [form for form in parse_forms(page.text) if form.attrs.get("data-form") == kind]
    assert forms, f"no {kind} form (HTTP {page.status_code}):\n{page.text[:1500]}"
    return forms[0].attrs["action"], dict(forms[0].fields)


async def post(client: httpx.AsyncClient, action: str, data: dict[str, str]) -> httpx.Response:
    return await client.post(action, data=data, follow_redirects=False)


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    assert response.status_code == 303, response.text[:1500]
    return await client.get(response.headers["location"], follow_redirects=False)


def has_session_cookie(client: httpx.AsyncClient) -> bool:
    return "charter_session" in client.cookies


def session_rows(live: Live) -> list[LoginSession]:
    with live.server.database.transaction() as session:
        return list(session.scalars(select(LoginSession)))


async def start(
    live: Live, client: httpx.AsyncClient, verifier_challenge: tuple[str, str] | None = None
) -> tuple[httpx.Response, str]:
    """Open ``/authorize`` and log in with the one-time password; the change page and the
    PKCE verifier."""
    verifier, challenge = verifier_challenge or pkce_pair()
    params = authorize_params(live.client_id, REDIRECT, challenge, scope="mcp")
    page = await client.get("/authorize", params=params)
    action, fields = form_of(page, "login")
    answer = await post(client, action, {**fields, "username": "Admin", "password": ONE_TIME})
    assert answer.status_code == 303, answer.text[:1500]
    assert "/authorize/password?" in answer.headers["location"]
    assert not has_session_cookie(client)
    return await follow(client, answer), verifier


async def test_one_time_password_leads_through_the_change_page_to_a_code(live: Live) -> None:
    async with browser(live) as client:
        page, verifier = await start(live, client)
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "no-store" in page.headers["cache-control"]
        action, fields = form_of(page, "change-password")
        assert set(fields) >= {"request_id", "csrf_token"}

        # Mistakes show the page again with the reason; nobody is logged in meanwhile.
        attempts: list[tuple[dict[str, str], str]] = [
            ({"new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD + "x"}, "differ"),
            ({"new_password": "short", "new_password_confirm": "short"}, "at least 8"),
            ({"new_password": ONE_TIME, "new_password_confirm": ONE_TIME}, "different from"),
            ({"new_password": NEW_PASSWORD}, "differ"),
        ]
        for data, reason in attempts:
            answer = await post(client, action, {**fields, **data})
            assert answer.status_code == 400, answer.text[:1500]
            assert reason in answer.text
            assert not has_session_cookie(client)
            assert session_rows(live) == []
            action, fields = form_of(answer, "change-password")
        assert live.user().must_change_password

        # The right change signs in and continues to the consent page, then to the client.
        answer = await post(
            client,
            action,
            {**fields, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD},
        )
        assert has_session_cookie(client)
        consent = await follow(client, answer)
        action, fields = form_of(consent, "consent")
        assert "admin" in consent.text
        done = await post(client, action, {**fields, "decision": "approve"})
        assert done.status_code == 303
        location = httpx.URL(done.headers["location"])
        assert str(location).startswith(REDIRECT)
        token = await client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": location.params["code"],
                "redirect_uri": REDIRECT,
                "client_id": live.client_id,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        assert token.json()["access_token"]

    user = live.user()
    assert not user.must_change_password
    assert user.password_change_pending_hash is None
    assert live.server.passwords.verify(user.password_hash, NEW_PASSWORD)
    with live.server.database.transaction() as session:
        events = [event.event for event in session.scalars(select(AuditEvent))]
        details = [str(event.detail) for event in session.scalars(select(AuditEvent))]
    assert "login_password_change_required" in events
    assert "password_changed" in events
    assert all(NEW_PASSWORD not in detail and ONE_TIME not in detail for detail in details)

    # The one-time password is gone; the new one signs in straight to the consent page.
    async with browser(live) as client:
        params = authorize_params(live.client_id, REDIRECT, pkce_pair()[1], scope="mcp")
        page = await client.get("/authorize", params=params)
        action, fields = form_of(page, "login")
        old = await post(client, action, {**fields, "username": "admin", "password": ONE_TIME})
        assert old.status_code == 401
        action, fields = form_of(old, "login")
        new = await post(client, action, {**fields, "username": "admin", "password": NEW_PASSWORD})
        assert new.status_code in (302, 303)
        assert "/authorize/password" not in new.headers["location"]


async def test_user_without_the_flag_goes_straight_to_consent(live: Live) -> None:
    create_user(live.server, "bob", NEW_PASSWORD)
    async with browser(live) as client:
        params = authorize_params(live.client_id, REDIRECT, pkce_pair()[1], scope="mcp")
        page = await client.get("/authorize", params=params)
        action, fields = form_of(page, "login")
        answer = await post(client, action, {**fields, "username": "bob", "password": NEW_PASSWORD})
        assert answer.status_code == 303
        assert "/authorize/consent?" in answer.headers["location"]
        assert has_session_cookie(client)
        location = await authorize_with_login(client, params, "bob", NEW_PASSWORD)
        assert location.params["code"]


async def test_the_change_page_is_bound_to_its_browser(live: Live) -> None:
    async with browser(live) as client, browser(live) as other:
        page, _ = await start(live, client)
        action, fields = form_of(page, "change-password")
        data = {**fields, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
        stolen = await post(other, action, data)
        assert stolen.status_code == 400
        assert "another browser" in stolen.text
        opened = await other.get(page.url, follow_redirects=False)
        assert "change-password" not in opened.text
        no_csrf = await post(client, action, {**data, "csrf_token": "x" * 43})
        assert no_csrf.status_code == 403
    assert live.user().must_change_password
    assert session_rows(live) == []


async def test_the_proof_of_the_login_expires(live: Live) -> None:
    async with browser(live) as client:
        page, _ = await start(live, client)
        action, fields = form_of(page, "change-password")
        live.clock.now += PASSWORD_CHANGE_TTL + 1
        data = {**fields, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
        late = await post(client, action, data)
        assert late.status_code == 200
        assert "Sign in again" in late.text
        form_of(late, "login")
        assert not has_session_cookie(client)
    assert live.user().must_change_password


async def test_parallel_posts_of_one_change_have_one_winner(live: Live) -> None:
    async with browser(live) as client:
        page, _ = await start(live, client)
        action, fields = form_of(page, "change-password")
        cookies = dict(client.cookies)

    async def post_once(index: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=live.base_url, cookies=cookies, timeout=60) as c:
            password = f"{NEW_PASSWORD} {index}"
            data = {**fields, "new_password": password, "new_password_confirm": password}
            return await post(c, action, data)

    answers = await asyncio.gather(*(post_once(index) for index in range(6)))
    winners = [a for a in answers if a.status_code == 303]
    assert len(winners) == 1, [a.status_code for a in answers]
    assert all(a.status_code in (200, 303, 400, 403) for a in answers)
    assert len(session_rows(live)) == 1
    winner = answers.index(winners[0])
    user = live.user()
    assert live.server.passwords.verify(user.password_hash, f"{NEW_PASSWORD} {winner}")
