"""Refresh tokens: rotation, client binding, reuse detection, expiry, no escalation (S23-S27,
S38)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.crypto import hash_token
from authserver.storage.models import AccessToken, AuditEvent, Grant, RefreshToken
from tests.support.clock import Clock
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user


@dataclass
class Setup:
    server: AuthServer
    clock: Clock
    http: httpx.AsyncClient
    client_id: str
    user_id: str


@pytest.fixture
async def setup(make_server: object) -> AsyncIterator[Setup]:
    clock = Clock()
    server: AuthServer = make_server(  # type: ignore[operator]
        clock=clock,
        refresh_token_idle_ttl=3600,
        refresh_token_absolute_ttl=7200,
        refresh_reuse_grace_seconds=10,
    )
    client, _ = create_client(server, scope="mcp notes:read notes:write")
    user = create_user(server)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield Setup(server, clock, http, client.client_id, user.id)


async def tokens(setup: Setup, scope: str = "mcp notes:read") -> dict[str, str]:
    issued = create_code(
        setup.server, client_id=setup.client_id, subject=setup.user_id, scope=scope
    )
    response = await setup.http.post("/token", data=code_form(issued))
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def refresh(setup: Setup, token: str, **extra: str) -> httpx.Response:
    return await setup.http.post("/token", data=refresh_form(token, setup.client_id, **extra))


def grant_of(setup: Setup, refresh_token: str) -> Grant:
    with setup.server.database.transaction() as session:
        row = session.get(RefreshToken, hash_token(refresh_token))
        assert row is not None
        grant = session.get(Grant, row.grant_id)
        assert grant is not None
        return grant


async def test_s23_rotation_on_every_use_and_client_binding(setup: Setup) -> None:
    first = await tokens(setup)
    response = await refresh(setup, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "mcp notes:read"
    assert response.headers["cache-control"] == "no-store"
    # The old token is dead.
    assert (await refresh(setup, first["refresh_token"])).json()["error"] == "invalid_grant"
    # Client B cannot use client A's token, and the attempt does not consume it.
    other, _ = create_client(setup.server)
    stolen = await setup.http.post(
        "/token", data=refresh_form(second["refresh_token"], other.client_id)
    )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert (await refresh(setup, second["refresh_token"])).status_code == 200


async def test_s24_reuse_of_rotated_token_revokes_grant(setup: Setup) -> None:
    first = await tokens(setup)
    second = (await refresh(setup, first["refresh_token"])).json()
    third = (await refresh(setup, second["refresh_token"])).json()
    setup.clock.advance(setup.server.settings.refresh_reuse_grace_seconds + 1)
    reuse = await refresh(setup, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    grant = grant_of(setup, first["refresh_token"])
    assert grant.revoked_at is not None and grant.revoked_reason == "refresh_reuse"
    with setup.server.database.transaction() as session:
        refresh_rows = session.scalars(
            select(RefreshToken).where(RefreshToken.grant_id == grant.id)
        ).all()
        assert len(refresh_rows) == 3
        assert all(row.revoked_at is not None for row in refresh_rows)
        access_rows = session.scalars(
            select(AccessToken).where(AccessToken.grant_id == grant.id)
        ).all()
        assert len(access_rows) == 3
        assert all(row.revoked_at is not None for row in access_rows)
        assert "refresh_reuse_detected" in session.scalars(select(AuditEvent.event)).all()
    # The newest token of the family is dead too.
    assert (await refresh(setup, third["refresh_token"])).json()["error"] == "invalid_grant"


async def test_s25_reuse_within_grace_is_only_refused(setup: Setup) -> None:
    """Grace policy: a rotated token presented again within ``refresh_reuse_grace_seconds``
    (a client racing itself) gets ``invalid_grant`` but the grant survives."""
    first = await tokens(setup)
    second = (await refresh(setup, first["refresh_token"])).json()
    setup.clock.advance(setup.server.settings.refresh_reuse_grace_seconds - 1)
    again = await refresh(setup, first["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert grant_of(setup, first["refresh_token"]).revoked_at is None
    assert (await refresh(setup, second["refresh_token"])).status_code == 200


async def test_s26_no_scope_or_resource_escalation_on_refresh(setup: Setup) -> None:
    first = await tokens(setup, scope="mcp notes:read")
    wider = await refresh(setup, first["refresh_token"], scope="mcp notes:read notes:write")
    assert wider.json()["error"] == "invalid_scope"
    other_resource = await refresh(
        setup, first["refresh_token"], resource="https://evil.example/mcp"
    )
    assert other_resource.json()["error"] == "invalid_target"
    narrower = await refresh(setup, first["refresh_token"], scope="notes:read")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "notes:read"
    # Narrowing one access token does not shrink the grant: the next refresh may ask for all.
    back = await refresh(setup, narrower.json()["refresh_token"])
    assert back.json()["scope"] == "mcp notes:read"
    same_resource = await refresh(
        setup, back.json()["refresh_token"], resource="http://127.0.0.1:8000/mcp"
    )
    assert same_resource.status_code == 200


async def test_s27_idle_expiry(setup: Setup) -> None:
    first = await tokens(setup)
    setup.clock.advance(3600 + 1)
    response = await refresh(setup, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_s27_absolute_expiry(setup: Setup) -> None:
    current = (await tokens(setup))["refresh_token"]
    for _ in range(3):  # keep the token fresh: idle expiry never hits
        setup.clock.advance(2000)
        response = await refresh(setup, current)
        assert response.status_code == 200, response.text
        current = response.json()["refresh_token"]
    setup.clock.advance(2000)  # 8000 s > absolute 7200 s
    response = await refresh(setup, current)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_s38_access_token_as_refresh_token_is_invalid_grant(setup: Setup) -> None:
    first = await tokens(setup)
    response = await refresh(setup, first["access_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    garbage = await refresh(setup, "x" * 5000)
    assert garbage.json()["error"] == "invalid_grant"


async def test_revoked_grant_refuses_refresh(setup: Setup) -> None:
    first = await tokens(setup)
    revoke = await setup.http.post(
        "/revoke", data={"token": first["refresh_token"], "client_id": setup.client_id}
    )
    assert revoke.status_code == 200
    response = await refresh(setup, first["refresh_token"])
    assert response.json()["error"] == "invalid_grant"


async def test_refresh_refused_for_disabled_user(setup: Setup) -> None:
    from authserver.storage.models import User

    first = await tokens(setup)
    with setup.server.database.transaction() as session:
        user = session.get(User, setup.user_id)
        assert user is not None
        user.disabled = True
    response = await refresh(setup, first["refresh_token"])
    assert response.json()["error"] == "invalid_grant"
