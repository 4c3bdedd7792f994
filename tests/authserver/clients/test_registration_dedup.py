"""S98: idempotent registration (RFC 7591 §3 repeated, REAL-CLIENTS §4) never hands one
registrant a client whose management (RFC 7592) another registrant holds.

The attack: an attacker behind the victim's address (NAT, shared office) registers metadata
identical to a popular client's first, keeps the registration access token, and waits for the
victim's registration to be answered with the same ``client_id``; then adds its own redirect URI
under the name the victim trusts, or deletes the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import Client
from tests.conftest import TEST_ISSUER

PUBLIC: dict[str, Any] = {
    "client_name": "Popular MCP Client",
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
EVIL = [*PUBLIC["redirect_uris"], "https://evil.example/cb"]
#: Rounds of the concurrent update-versus-registration race (each a fresh pair).
RACE_ROUNDS = 20


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored_redirects(server: AuthServer, client_id: str) -> list[str] | None:
    with server.database.transaction() as session:
        row = session.get(Client, client_id)
        return None if row is None else list(row.redirect_uris or [])


async def test_s98_attacker_cannot_manage_the_client_handed_to_the_victim(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    attacker = (await as_client.post("/register", json=PUBLIC)).json()
    victim = await as_client.post("/register", json=PUBLIC)
    assert victim.status_code == 201
    client_id = victim.json()["client_id"]
    path = f"/register/{attacker['client_id']}"
    token = attacker["registration_access_token"]
    hijack = {**PUBLIC, "client_id": attacker["client_id"], "redirect_uris": EVIL}
    if client_id == attacker["client_id"]:
        assert (await as_client.put(path, json=hijack, headers=bearer(token))).status_code == 401
        assert (await as_client.get(path, headers=bearer(token))).status_code == 401
        assert (await as_client.delete(path, headers=bearer(token))).status_code == 401
    assert stored_redirects(auth_server, client_id) == PUBLIC["redirect_uris"]


async def test_s98_client_changed_before_the_repeat_is_not_handed_out(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    attacker = (await as_client.post("/register", json=PUBLIC)).json()
    path = f"/register/{attacker['client_id']}"
    hijack = {**PUBLIC, "client_id": attacker["client_id"], "redirect_uris": EVIL}
    changed = await as_client.put(
        path, json=hijack, headers=bearer(attacker["registration_access_token"])
    )
    assert changed.status_code == 200
    # Changed back to the popular metadata: still managed by the attacker, never reused.
    back = {**PUBLIC, "client_id": attacker["client_id"]}
    token = attacker["registration_access_token"]
    assert (await as_client.put(path, json=back, headers=bearer(token))).status_code == 200
    victim = (await as_client.post("/register", json=PUBLIC)).json()
    if victim["client_id"] == attacker["client_id"]:
        assert (await as_client.put(path, json=hijack, headers=bearer(token))).status_code == 401
    assert stored_redirects(auth_server, victim["client_id"]) == PUBLIC["redirect_uris"]


async def test_s98_update_racing_the_repeat_never_reaches_the_victims_client(
    make_server: Callable[..., AuthServer],
) -> None:
    """The attacker's update and the victim's registration sent together, RACE_ROUNDS times
    (each request runs in its own worker thread, as in the server)."""
    auth_server = make_server(registration_rate_per_minute=10 * RACE_ROUNDS)
    transport = httpx.ASGITransport(app=create_app(auth_server))
    async with httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER) as as_client:
        await race(as_client, auth_server)


async def race(as_client: httpx.AsyncClient, auth_server: AuthServer) -> None:
    for round_number in range(RACE_ROUNDS):
        body = {**PUBLIC, "client_name": f"Popular MCP Client {round_number}"}
        attacker = (await as_client.post("/register", json=body)).json()
        path = f"/register/{attacker['client_id']}"
        hijack = {**body, "client_id": attacker["client_id"], "redirect_uris": EVIL}
        token = attacker["registration_access_token"]
        update, victim = await asyncio.gather(
            as_client.put(path, json=hijack, headers=bearer(token)),
            as_client.post("/register", json=body),
        )
        assert victim.status_code == 201
        client_id = victim.json()["client_id"]
        assert stored_redirects(auth_server, client_id) == PUBLIC["redirect_uris"], (
            f"round {round_number}: update {update.status_code}"
        )
        if client_id == attacker["client_id"]:
            again = await as_client.put(path, json=hijack, headers=bearer(token))
            assert again.status_code == 401
