"""Client configuration endpoint (RFC 7592): read, update, delete with the registration token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authserver.context import AuthServer
from authserver.oauth.grants.base import mark_client_used
from authserver.storage.crypto import hash_token, new_id
from authserver.storage.models import AccessToken, Client, Grant
from tests.support.factories import create_client

PUBLIC = {
    "client_name": "Managed",
    "redirect_uris": ["http://127.0.0.1/callback"],
    "token_endpoint_auth_method": "none",
}


async def registered(as_client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> Any:
    response = await as_client.post("/register", json=body or PUBLIC)
    assert response.status_code == 201
    return response.json()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_read_client_configuration(as_client: httpx.AsyncClient) -> None:
    info = await registered(as_client)
    response = await as_client.get(
        f"/register/{info['client_id']}", headers=auth(info["registration_access_token"])
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["client_id"] == info["client_id"]
    assert body["redirect_uris"] == PUBLIC["redirect_uris"]
    assert "registration_access_token" not in body
    assert body["registration_client_uri"] == info["registration_client_uri"]


async def test_wrong_or_missing_token_is_invalid_token_and_hides_existence(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    info = await registered(as_client)
    other = await registered(as_client, {**PUBLIC, "client_name": "Other"})
    static, _ = create_client(auth_server)
    path = f"/register/{info['client_id']}"
    cases = [
        ("GET", path, {}),
        ("GET", path, auth("wrong")),
        ("GET", path, {"Authorization": f"Basic {info['registration_access_token']}"}),
        ("GET", path, auth(other["registration_access_token"])),
        ("GET", "/register/dcr_unknown", auth(info["registration_access_token"])),
        ("GET", f"/register/{static.client_id}", auth("anything")),
        ("DELETE", path, auth("wrong")),
        ("PUT", path, auth("wrong")),
    ]
    bodies = set()
    for method, url, headers in cases:
        response = await as_client.request(
            method, url, headers=headers, json={**PUBLIC, "client_id": info["client_id"]}
        )
        assert response.status_code == 401, (method, url, headers)
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer")
        if headers.get("Authorization", "").startswith("Bearer"):
            bodies.add(response.text)
    # Unknown client, other client's token, wrong token: one indistinguishable answer.
    assert len(bodies) == 1


async def test_update_replaces_metadata_with_same_validation(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    info = await registered(as_client)
    path = f"/register/{info['client_id']}"
    headers = auth(info["registration_access_token"])
    new = {
        "client_id": info["client_id"],
        "client_name": "Renamed",
        "redirect_uris": ["http://localhost:9999/cb"],
        "token_endpoint_auth_method": "none",
    }
    response = await as_client.put(path, json=new, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["client_name"] == "Renamed"
    assert response.json()["redirect_uris"] == ["http://localhost:9999/cb"]
    bad = await as_client.put(
        path, json={**new, "redirect_uris": ["javascript:alert(1)"]}, headers=headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_redirect_uri"
    mismatch = await as_client.put(path, json={**new, "client_id": "dcr_other"}, headers=headers)
    assert mismatch.status_code == 400
    assert mismatch.json()["error"] == "invalid_client_metadata"
    missing = await as_client.put(
        path, json={k: v for k, v in new.items() if k != "client_id"}, headers=headers
    )
    assert missing.status_code == 400
    chosen_secret = await as_client.put(
        path, json={**new, "client_secret": "my-own-secret"}, headers=headers
    )
    assert chosen_secret.status_code == 400
    with auth_server.database.transaction() as session:
        row = session.get(Client, info["client_id"])
        assert row is not None
        assert row.client_name == "Renamed"
        assert row.redirect_uris == ["http://localhost:9999/cb"]


async def test_update_to_confidential_issues_secret_once(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    info = await registered(as_client)
    path = f"/register/{info['client_id']}"
    headers = auth(info["registration_access_token"])
    body = {
        **PUBLIC,
        "client_id": info["client_id"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = await as_client.put(path, json=body, headers=headers)
    assert response.status_code == 200
    secret = response.json()["client_secret"]
    again = await as_client.put(path, json={**body, "client_secret": secret}, headers=headers)
    assert again.status_code == 200
    assert "client_secret" not in again.json()
    with auth_server.database.transaction() as session:
        row = session.get(Client, info["client_id"])
        assert row is not None
        assert row.secret_hash == hash_token(secret)
    public = await as_client.put(
        path, json={**PUBLIC, "client_id": info["client_id"]}, headers=headers
    )
    assert public.status_code == 200
    with auth_server.database.transaction() as session:
        row = session.get(Client, info["client_id"])
        assert row is not None
        assert row.secret_hash is None


async def test_delete_client_revokes_its_tokens(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    info = await registered(as_client)
    client_id = info["client_id"]
    now = auth_server.now()
    with auth_server.database.transaction() as session:
        session.add(
            Grant(
                id="g1",
                client_id=client_id,
                subject="u1",
                scope="mcp",
                resource="http://127.0.0.1:8000/mcp",
                grant_type="authorization_code",
                code_hash=None,
                created_at=now,
                expires_at=now + 3600,
            )
        )
        session.add(
            AccessToken(
                jti=new_id(),
                grant_id="g1",
                client_id=client_id,
                subject="u1",
                scope="mcp",
                resource="http://127.0.0.1:8000/mcp",
                issued_at=now,
                expires_at=now + 3600,
            )
        )
    headers = auth(info["registration_access_token"])
    response = await as_client.delete(f"/register/{client_id}", headers=headers)
    assert response.status_code == 204
    with auth_server.database.transaction() as session:
        assert session.get(Client, client_id) is None
        grant = session.get(Grant, "g1")
        assert grant is not None and grant.revoked_at is not None
        tokens = session.query(AccessToken).filter_by(client_id=client_id).all()
        assert tokens and all(token.revoked_at is not None for token in tokens)
    gone = await as_client.get(f"/register/{client_id}", headers=headers)
    assert gone.status_code == 401


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_management_cors(as_client: httpx.AsyncClient, method: str) -> None:
    response = await as_client.options(
        "/register/dcr_x",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": method},
    )
    assert response.status_code == 204
    assert method in response.headers["access-control-allow-methods"]


def test_mark_client_used(auth_server: AuthServer) -> None:
    client, _ = create_client(auth_server, kind="dynamic")
    with auth_server.database.transaction() as session:
        row = session.get(Client, client.client_id)
        assert row is not None
        mark_client_used(session, row, 1_900_000_000)
    with auth_server.database.transaction() as session:
        row = session.get(Client, client.client_id)
        assert row is not None
        assert row.last_used_at == 1_900_000_000


async def test_update_cannot_add_client_credentials(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    """A self-registered client cannot turn itself into a client_credentials client."""
    info = await registered(as_client)
    response = await as_client.put(
        f"/register/{info['client_id']}",
        json={
            **PUBLIC,
            "client_id": info["client_id"],
            "grant_types": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        headers=auth(info["registration_access_token"]),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    with auth_server.database.transaction() as session:
        row = session.get(Client, info["client_id"])
        assert row is not None
        assert "client_credentials" not in row.grant_types
        assert row.secret_hash is None
