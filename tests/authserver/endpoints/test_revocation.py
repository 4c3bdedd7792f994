"""Revocation endpoint (RFC 7009) and the resource server's revocation view."""

from __future__ import annotations

import base64

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from authserver.context import AuthServer
from authserver.oauth.tokens import AccessTokenRevocationView
from authserver.storage.models import AccessToken, Grant
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user


def jti_of(server: AuthServer, token: str) -> str:
    keys = KeySet.import_key_set(server.keys.jwks())  # type: ignore[arg-type]
    return str(jwt.decode(token, keys, algorithms=["ES256"]).claims["jti"])


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def issue(
    server: AuthServer, http: httpx.AsyncClient, client_id: str, user_id: str
) -> dict[str, str]:
    issued = create_code(server, client_id=client_id, subject=user_id)
    response = await http.post("/token", data=code_form(issued))
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_revoking_refresh_token_revokes_whole_grant(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    body = await issue(auth_server, as_client, client.client_id, user.id)
    response = await as_client.post(
        "/revoke",
        data={
            "token": body["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": client.client_id,
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"
    jti = jti_of(auth_server, body["access_token"])
    with auth_server.database.transaction() as session:
        row = session.get(AccessToken, jti)
        assert row is not None and row.revoked_at is not None
        grant = session.get(Grant, row.grant_id)
        assert grant is not None and grant.revoked_at is not None
    again = await as_client.post(
        "/token", data=refresh_form(body["refresh_token"], client.client_id)
    )
    assert again.json()["error"] == "invalid_grant"


async def test_revoking_access_token_marks_its_jti_only(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    body = await issue(auth_server, as_client, client.client_id, user.id)
    view = AccessTokenRevocationView(auth_server, refresh_interval=0)
    jti = jti_of(auth_server, body["access_token"])
    assert not await view.is_revoked(jti)
    response = await as_client.post(
        "/revoke", data={"token": body["access_token"], "client_id": client.client_id}
    )
    assert response.status_code == 200
    assert await view.is_revoked(jti)
    # The grant lives on: the refresh token still works.
    refreshed = await as_client.post(
        "/token", data=refresh_form(body["refresh_token"], client.client_id)
    )
    assert refreshed.status_code == 200
    assert not await view.is_revoked(jti_of(auth_server, refreshed.json()["access_token"]))


async def test_unknown_tokens_and_other_clients_tokens_answer_200_and_change_nothing(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    owner, _ = create_client(auth_server)
    thief, thief_secret = create_client(auth_server, confidential=True)
    user = create_user(auth_server)
    body = await issue(auth_server, as_client, owner.client_id, user.id)
    for token in (body["refresh_token"], body["access_token"], "unknown", "a.b.c"):
        response = await as_client.post(
            "/revoke", data={"token": token}, headers=basic(thief.client_id, thief_secret or "")
        )
        assert response.status_code == 200
    with auth_server.database.transaction() as session:
        assert all(row.revoked_at is None for row in session.scalars(select(AccessToken)))
        assert all(row.revoked_at is None for row in session.scalars(select(Grant)))


async def test_revocation_requires_client_authentication(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    confidential, secret = create_client(auth_server, confidential=True)
    unknown = await as_client.post("/revoke", data={"token": "x", "client_id": "nobody"})
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_client"
    no_secret = await as_client.post(
        "/revoke", data={"token": "x", "client_id": confidential.client_id}
    )
    assert no_secret.status_code == 401
    wrong = await as_client.post(
        "/revoke", data={"token": "x"}, headers=basic(confidential.client_id, "wrong")
    )
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    ok = await as_client.post(
        "/revoke", data={"token": "x"}, headers=basic(confidential.client_id, secret or "")
    )
    assert ok.status_code == 200
    missing = await as_client.post(
        "/revoke", data={}, headers=basic(confidential.client_id, secret or "")
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    get = await as_client.get("/revoke")
    assert get.status_code == 405


async def test_revocation_view_polls_at_most_once_per_interval(
    auth_server: AuthServer, as_client: httpx.AsyncClient
) -> None:
    client, _ = create_client(auth_server)
    user = create_user(auth_server)
    body = await issue(auth_server, as_client, client.client_id, user.id)
    jti = jti_of(auth_server, body["access_token"])
    ticks = [100.0]
    view = AccessTokenRevocationView(auth_server, refresh_interval=2.0, monotonic=lambda: ticks[0])
    assert not await view.is_revoked(jti)
    await as_client.post(
        "/revoke", data={"token": body["access_token"], "client_id": client.client_id}
    )
    ticks[0] += 1.0
    assert not await view.is_revoked(jti)  # cached: no query yet
    ticks[0] += 1.5
    assert await view.is_revoked(jti)
