"""Obtain tokens from a running Charter through its real OAuth flow (DCR, login, consent, PKCE)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from tests.support.browser_flow import pkce_pair
from tests.support.charter_process import CharterProcess
from tests.support.headless import HeadlessUser

REDIRECT_URI = "http://127.0.0.1:53683/callback"


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered, and the client it answered."""

    client_id: str
    #: The authorization code that was redeemed.
    code: str
    access_token: str
    refresh_token: str | None
    scope: str


async def register_public_client(
    http: httpx.AsyncClient, redirect_uri: str = REDIRECT_URI, name: str = "Charter e2e"
) -> str:
    """Register a public client by RFC 7591 DCR; return its ``client_id``."""
    response = await http.post(
        "/register",
        json={
            "client_name": name,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


async def obtain_tokens(
    charter: CharterProcess,
    scope: str = "mcp notes:read notes:write",
    *,
    username: str = "admin",
    password: str | None = None,
) -> Tokens:
    """Register, log in as ``username``, approve, and redeem the code (PKCE S256, resource)."""
    password = password or charter.admin_password
    assert password is not None, "no password: pass one or use a first start"
    user = HeadlessUser(username, password)
    try:
        async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
            client_id = await register_public_client(http)
            verifier, challenge = pkce_pair()
            state = secrets.token_urlsafe(16)
            url = http.base_url.join("/authorize").copy_merge_params(
                {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": REDIRECT_URI,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "state": state,
                    "scope": scope,
                    "resource": charter.mcp_url,
                }
            )
            redirect = await user.authorize(str(url))
            assert redirect.params.get("state") == state, redirect
            response = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": redirect.params["code"],
                    "redirect_uri": REDIRECT_URI,
                    "client_id": client_id,
                    "code_verifier": verifier,
                    "resource": charter.mcp_url,
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
    finally:
        await user.aclose()
    return Tokens(
        client_id,
        redirect.params["code"],
        body["access_token"],
        body.get("refresh_token"),
        body["scope"],
    )
