"""Introspection endpoint (RFC 7662)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from tests.support.clock import Clock
from tests.support.codes import code_form, create_code
from tests.support.factories import create_client, create_user


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def issue(
    server: AuthServer, http: httpx.AsyncClient, client_id: str, secret: str, user_id: str
) -> dict[str, Any]:
    issued = create_code(server, client_id=client_id, subject=user_id, scope="mcp notes:read")
    response = await http.post(
        "/token", data=code_form(issued, client_id=""), headers=basic(client_id, secret)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_active_access_token_is_described(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, secret = create_client(auth_server, confidential=True)
    user = create_user(auth_server)
    body = await issue(auth_server, as_client, client.client_id, secret or "", user.id)
    auth = basic(client.client_id, secret or "")
    response = await as_client.post(
        "/introspect", data={"token": body["access_token"]}, headers=auth
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["active"] is True
    assert info["scope"] == "mcp notes:read"
    assert info["client_id"] == client.client_id
    assert info["sub"] == user.id
    assert info["aud"] == "http://127.0.0.1:8000/mcp"
    assert info["iss"] == auth_server.settings.issuer
    assert info["token_type"] == "Bearer"
    assert {"exp", "iat", "jti"} <= info.keys()

    refresh_info = (
        await as_client.post("/introspect", data={"token": body["refresh_token"]}, headers=auth)
    ).json()
    assert refresh_info["active"] is True
    assert refresh_info["token_type"] == "refresh_token"

    await as_client.post("/revoke", data={"token": body["access_token"]}, headers=auth)
    revoked = await as_client.post(
        "/introspect", data={"token": body["access_token"]}, headers=auth
    )
    assert revoked.json() == {"active": False}


@pytest.mark.parametrize("token", ["", "unknown", "a.b.c", "x" * 9000])
async def test_unknown_tokens_are_inactive(
    auth_server: AuthServer, as_client: httpx.AsyncClient, token: str
) -> None:
    client, secret = create_client(auth_server, confidential=True)
    response = await as_client.post(
        "/introspect", data={"token": token}, headers=basic(client.client_id, secret or "")
    )
    assert response.status_code == 200
    assert response.json() == {"active": False}


async def test_expired_and_other_clients_tokens_are_inactive(make_server: Any) -> None:
    clock = Clock()
    server: AuthServer = make_server(clock=clock)
    client, secret = create_client(server, confidential=True)
    other, other_secret = create_client(server, confidential=True)
    user = create_user(server)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        body = await issue(server, http, client.client_id, secret or "", user.id)
        foreign = await http.post(
            "/introspect",
            data={"token": body["access_token"]},
            headers=basic(other.client_id, other_secret or ""),
        )
        assert foreign.json() == {"active": False}
        clock.advance(server.settings.access_token_ttl + 1)
        expired = await http.post(
            "/introspect",
            data={"token": body["access_token"]},
            headers=basic(client.client_id, secret or ""),
        )
        assert expired.json() == {"active": False}


async def test_other_audience_is_inactive(make_server: Any) -> None:
    first: AuthServer = make_server()
    client, secret = create_client(first, confidential=True)
    user = create_user(first)
    transport = httpx.ASGITransport(app=create_app(first))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        body = await issue(first, http, client.client_id, secret or "", user.id)
    # Same database and keys, but the deployment now serves another resource.
    moved: AuthServer = make_server(resource_url="http://127.0.0.1:8000/other")
    transport = httpx.ASGITransport(app=create_app(moved))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.post(
            "/introspect",
            data={"token": body["access_token"]},
            headers=basic(client.client_id, secret or ""),
        )
        assert response.json() == {"active": False}


async def test_only_confidential_clients_may_introspect(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    public, _ = create_client(auth_server)
    response = await as_client.post(
        "/introspect", data={"token": "x", "client_id": public.client_id}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    anonymous = await as_client.post("/introspect", data={"token": "x"})
    assert anonymous.status_code == 401
    wrong = await as_client.post(
        "/introspect", data={"token": "x"}, headers=basic(public.client_id, "guess")
    )
    assert wrong.status_code == 401
