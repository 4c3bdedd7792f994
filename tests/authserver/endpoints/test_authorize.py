"""The whole browser part of the authorization flow: in process, over a real socket, with
failed logins, throttling, expiry, ``prompt`` and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authserver.browser.login import IP_LIMIT_FACTOR
from authserver.browser.pending import (
    PENDING_RATE_WINDOW,
    PENDING_TTL,
    pending_rate_key,
)
from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.crypto import hash_token
from authserver.storage.models import (
    AuditEvent,
    AuthorizationCode,
    LoginSession,
    PendingAuthorization,
    User,
)
from tests.support.browser_flow import (
    authorize_params,
    authorize_with_login,
    follow_authorization,
    parse_forms,
    pkce_pair,
)
from tests.support.clock import Clock
from tests.support.factories import create_client, create_user
from tests.support.live import free_port, serve_app

PASSWORD = "correct horse battery"
ISSUER = "http://127.0.0.1:8000"
REDIRECT = "https://app.example.com/cb"


def params_for(client_id: str, **extra: Any) -> dict[str, Any]:
    return authorize_params(client_id, REDIRECT, pkce_pair()[1], **extra)


def login_form(response: httpx.Response) -> tuple[str, dict[str, str]]:
    assert response.status_code in (200, 401, 429), response.text
    form = next(form for form in parse_forms(response.text) if form.attrs["data-form"] == "login")
    return form.attrs["action"], dict(form.fields)


async def test_login_consent_code_over_real_socket(make_server: Callable[..., AuthServer]) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    server = make_server(issuer=issuer)
    user = create_user(server)
    client, _ = create_client(server, redirect_uris=["http://127.0.0.1/callback"])
    _, challenge = pkce_pair()
    with serve_app(create_app(server), port=port) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as browser:
            params = authorize_params(
                client.client_id, "http://127.0.0.1:5555/callback", challenge, state="live"
            )
            location = await authorize_with_login(browser, params, "alice", PASSWORD)
    assert (location.scheme, location.host, location.port, location.path) == (
        "http",
        "127.0.0.1",
        5555,
        "/callback",
    )
    assert location.params["state"] == "live"
    assert location.params["iss"] == issuer
    with server.database.transaction() as session:
        row = session.get(AuthorizationCode, hash_token(location.params["code"]))
        assert row is not None
        assert row.subject == user.id
        assert row.resource == issuer + "/mcp"


async def test_follow_authorization_from_full_url(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    url = httpx.URL(ISSUER + "/authorize").copy_merge_params(params_for(client.client_id))
    location = await follow_authorization(as_client, url, "alice", PASSWORD)
    assert location.params["code"]


async def test_wrong_password_and_unknown_user_answer_alike(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    page = await as_client.get("/authorize", params=params_for(client.client_id))
    action, fields = login_form(page)
    answers = []
    for username, password in (("alice", "wrong"), ("mallory", "wrong"), ("alice", "")):
        response = await as_client.post(
            action, data={**fields, "username": username, "password": password}
        )
        assert response.status_code == 401
        assert "charter_session" not in response.headers.get("set-cookie", "")
        answers.append(response.text.replace(f'value="{username}"', ""))
    assert answers[0] == answers[1]
    ok = await as_client.post(action, data={**fields, "username": "alice", "password": PASSWORD})
    assert ok.status_code == 303
    with auth_server.database.transaction() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        sessions = session.scalars(select(LoginSession)).all()
    names = [event.event for event in events]
    assert names.count("login_failed") == 3
    assert "login_succeeded" in names
    assert all(PASSWORD not in str(event.detail) for event in events)
    # The session cookie is stored only as its hash.
    assert [row.id_hash for row in sessions] == [hash_token(as_client.cookies["charter_session"])]


def browser_at(server: AuthServer, ip: str) -> httpx.AsyncClient:
    """A browser whose requests come from ``ip``."""
    transport = httpx.ASGITransport(app=create_app(server), client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


async def open_login_form(browser: httpx.AsyncClient, client_id: str) -> tuple[str, dict[str, str]]:
    return login_form(await browser.get("/authorize", params=params_for(client_id)))


async def test_s20_failed_logins_throttled_per_username_and_ip(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock(), failed_auth_limit=2)
    create_user(server)
    create_user(server, "bob")
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    async with browser_at(server, "198.51.100.7") as attacker:
        action, fields = await open_login_form(attacker, client.client_id)
        statuses = []
        for _ in range(3):
            response = await attacker.post(
                action, data={**fields, "username": "alice", "password": "bad"}
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429]
        assert "Too many failed sign-in attempts" in response.text
        # From the guessing IP even the right password waits (no brute force from one IP).
        response = await attacker.post(
            action, data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 429
        assert "charter_session" not in response.headers.get("set-cookie", "")
        # Another username from the same IP still works until the IP limit.
        response = await attacker.post(
            action, data={**fields, "username": "bob", "password": PASSWORD}
        )
        assert response.status_code == 303


async def test_s20_guessing_cannot_lock_a_user_out_from_another_ip(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock(), failed_auth_limit=2)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    async with browser_at(server, "198.51.100.7") as attacker:
        action, fields = await open_login_form(attacker, client.client_id)
        for username in ("alice", "mallory"):
            for _ in range(3):
                await attacker.post(
                    action, data={**fields, "username": username, "password": "bad"}
                )
    async with browser_at(server, "192.0.2.10") as owner:
        action, fields = await open_login_form(owner, client.client_id)
        # The username is over its failure limit: a wrong password answers 429 from anywhere
        # (after the same verification), exactly like an unknown username over its limit.
        wrong = await owner.post(action, data={**fields, "username": "alice", "password": "x"})
        unknown = await owner.post(action, data={**fields, "username": "mallory", "password": "x"})
        assert (wrong.status_code, unknown.status_code) == (429, 429)
        assert wrong.text.replace('value="alice"', "") == unknown.text.replace(
            'value="mallory"', ""
        )
        # ... but the right password from the owner's IP logs in.
        response = await owner.post(
            action, data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 303
        assert "charter_session" in response.headers.get("set-cookie", "")


async def test_s20_ip_limit_covers_every_username_and_spares_successes(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock(), failed_auth_limit=2)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    ip_limit = 2 * IP_LIMIT_FACTOR
    async with browser_at(server, "203.0.113.5") as nat:
        action, fields = await open_login_form(nat, client.client_id)
        # Successful logins do not use up the shared IP's budget.
        for _ in range(ip_limit + 1):
            ok = await nat.post(action, data={**fields, "username": "alice", "password": PASSWORD})
            assert ok.status_code == 303
        for number in range(ip_limit):
            response = await nat.post(
                action, data={**fields, "username": f"user{number}", "password": "bad"}
            )
            assert response.status_code == 401
        response = await nat.post(
            action, data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 429


async def test_s20_parallel_guesses_cannot_pass_the_limit(
    make_server: Callable[..., AuthServer],
) -> None:
    server = make_server(clock=Clock(), failed_auth_limit=2)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    async with browser_at(server, "198.51.100.7") as attacker:
        action, fields = await open_login_form(attacker, client.client_id)
        responses = await asyncio.gather(
            *(
                attacker.post(action, data={**fields, "username": "alice", "password": f"bad{n}"})
                for n in range(8)
            )
        )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [401, 401] + [429] * 6


async def test_new_pending_requests_rate_limited_per_ip(
    make_server: Callable[..., AuthServer],
) -> None:
    clock = Clock()
    server = make_server(clock=clock, authorize_rate_per_minute=5)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    limit = server.settings.authorize_rate_per_minute

    def pending_rows() -> int:
        with server.database.transaction() as session:
            return len(session.scalars(select(PendingAuthorization)).all())

    async with browser_at(server, "198.51.100.7") as flooder:
        for _ in range(limit):
            page = await flooder.get("/authorize", params=params_for(client.client_id))
            assert page.status_code == 200
        refused = await flooder.get("/authorize", params=params_for(client.client_id))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many sign-in requests" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= PENDING_RATE_WINDOW
        assert refused.headers["cache-control"] == "no-store"
        assert pending_rows() == limit
        # prompt=none stores nothing and is not refused.
        silent = await flooder.get("/authorize", params=params_for(client.client_id, prompt="none"))
        assert "error=login_required" in silent.headers["location"]
    # Another client IP is not affected; the next window lets the first one in again.
    async with browser_at(server, "192.0.2.10") as other:
        assert (await other.get("/authorize", params=params_for(client.client_id))).is_success
    async with browser_at(server, "198.51.100.7") as flooder:
        clock.now += PENDING_RATE_WINDOW
        assert (await flooder.get("/authorize", params=params_for(client.client_id))).is_success
        # A logged-in user whose consent is remembered needs no pending row: never refused.
        await authorize_with_login(flooder, params_for(client.client_id), "alice", PASSWORD)
        for _ in range(limit):
            await flooder.get("/authorize", params=params_for(client.client_id, prompt="login"))
        again = await flooder.get("/authorize", params=params_for(client.client_id))
        assert again.status_code == 302
        assert "code=" in again.headers["location"]


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("198.51.100.7", "198.51.100.7", True),
        ("198.51.100.7", "198.51.100.8", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ],
)
def test_pending_rate_counts_ipv6_per_64(first: str, second: str, shared: bool) -> None:
    assert (pending_rate_key(first) == pending_rate_key(second)) is shared


async def test_pending_request_expires(make_server: Callable[..., AuthServer]) -> None:
    clock = Clock()
    server = make_server(clock=clock)
    create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        page = await browser.get("/authorize", params=params_for(client.client_id))
        action, fields = login_form(page)
        clock.now += PENDING_TTL + 1
        response = await browser.post(
            action, data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 400
        assert "expired" in response.text
        assert "location" not in response.headers


async def test_login_session_expiry_and_disabled_user(
    make_server: Callable[..., AuthServer],
) -> None:
    clock = Clock()
    server = make_server(clock=clock)
    user = create_user(server)
    client, _ = create_client(server, redirect_uris=[REDIRECT])
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        await authorize_with_login(browser, params_for(client.client_id), "alice", PASSWORD)
        again = await browser.get("/authorize", params=params_for(client.client_id))
        assert again.status_code == 302  # logged in, consent remembered
        clock.now += server.settings.login_session_ttl + 1
        expired = await browser.get("/authorize", params=params_for(client.client_id))
        assert 'data-form="login"' in expired.text
        await authorize_with_login(browser, params_for(client.client_id), "alice", PASSWORD)
        with server.database.transaction() as session:
            row = session.get(User, user.id)
            assert row is not None
            row.disabled = True
        disabled = await browser.get("/authorize", params=params_for(client.client_id))
        assert 'data-form="login"' in disabled.text
        action, fields = login_form(disabled)
        refused = await browser.post(
            action, data={**fields, "username": "alice", "password": PASSWORD}
        )
        assert refused.status_code == 401


async def test_prompt_none_and_login(auth_server: AuthServer, as_client: httpx.AsyncClient) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    response = await as_client.get(
        "/authorize", params=params_for(client.client_id, prompt="none", state="p")
    )
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.params["error"] == "login_required"
    assert location.params["state"] == "p"
    await authorize_with_login(as_client, params_for(client.client_id), "alice", PASSWORD)
    silent = await as_client.get("/authorize", params=params_for(client.client_id, prompt="none"))
    assert "code=" in silent.headers["location"]
    forced = await as_client.get("/authorize", params=params_for(client.client_id, prompt="login"))
    assert 'data-form="login"' in forced.text
    bad = await as_client.get(
        "/authorize", params=params_for(client.client_id, prompt="none login")
    )
    assert "error=invalid_request" in bad.headers["location"]


def code_count(server: AuthServer) -> int:
    with server.database.transaction() as session:
        return len(session.scalars(select(AuthorizationCode)).all())


@pytest.mark.parametrize("remembered", [True, False])
async def test_prompt_login_cannot_be_skipped(
    auth_server: AuthServer, as_client: httpx.AsyncClient, remembered: bool
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    other, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    await authorize_with_login(as_client, params_for(other.client_id), "alice", PASSWORD)
    if remembered:
        await authorize_with_login(as_client, params_for(client.client_id), "alice", PASSWORD)
    codes = code_count(auth_server)
    forced = await as_client.get("/authorize", params=params_for(client.client_id, prompt="login"))
    action, fields = login_form(forced)
    # Opening the consent page directly with the older login session shows the login form again.
    skipped = await as_client.get("/authorize/consent", params={"request_id": fields["request_id"]})
    assert skipped.status_code == 200
    assert "location" not in skipped.headers
    _, fields = login_form(skipped)
    # Nor can the older session approve with the form's CSRF token.
    approve = await as_client.post(
        "/authorize/consent",
        data={
            "request_id": fields["request_id"],
            "csrf_token": fields["csrf_token"],
            "decision": "approve",
        },
    )
    assert approve.status_code == 403
    assert "location" not in approve.headers
    assert code_count(auth_server) == codes
    # Logging in on the request's own form completes it.
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    assert posted.status_code == 303
    if not remembered:
        consent = await as_client.get(posted.headers["location"])
        form = parse_forms(consent.text)[0]
        assert form.attrs["data-form"] == "consent"
        posted = await as_client.post(
            form.attrs["action"], data={**form.fields, "decision": "approve"}
        )
        assert posted.status_code == 303
    assert httpx.URL(posted.headers["location"]).params["code"]
    assert code_count(auth_server) == codes + 1


async def test_audit_trail_of_a_grant(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    user = create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    location = await authorize_with_login(
        as_client, params_for(client.client_id), "alice", PASSWORD
    )
    code = location.params["code"]
    with auth_server.database.transaction() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [event.event for event in events] == [
        "login_succeeded",
        "consent_granted",
        "code_issued",
    ]
    assert all(event.subject == user.id for event in events)
    assert all(event.client_id == client.client_id for event in events)
    assert all(code not in str(event.detail) for event in events)


@pytest.mark.parametrize("decision", ["", "maybe"])
async def test_consent_decision_must_be_approve_or_deny(
    auth_server: AuthServer, as_client: httpx.AsyncClient, decision: str
) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=[REDIRECT])
    page = await as_client.get("/authorize", params=params_for(client.client_id))
    action, fields = login_form(page)
    posted = await as_client.post(
        action, data={**fields, "username": "alice", "password": PASSWORD}
    )
    consent = await as_client.get(posted.headers["location"])
    form = parse_forms(consent.text)[0]
    response = await as_client.post(
        form.attrs["action"], data={**form.fields, "decision": decision}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
