"""The whole browser part of the authorization flow, in process and over a real socket."""

from __future__ import annotations

import base64
import hashlib

import httpx

from authserver.context import AuthServer
from authserver.crypto import new_token
from tests.support.browser_flow import authorize_with_login
from tests.support.factories import create_client, create_user


def pkce_pair() -> tuple[str, str]:
    verifier = new_token()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


async def test_login_consent_code(auth_server: AuthServer, as_client: httpx.AsyncClient) -> None:
    create_user(auth_server)
    client, _ = create_client(auth_server, redirect_uris=["http://127.0.0.1/callback"])
    _, challenge = pkce_pair()
    location = await authorize_with_login(
        as_client,
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": "http://127.0.0.1:5555/callback",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "xyz",
        },
        "alice",
        "correct horse battery",
    )
    assert location.host == "127.0.0.1"
    assert location.port == 5555
    assert location.params["state"] == "xyz"
    assert location.params["iss"] == "http://127.0.0.1:8000"
    assert location.params["code"]
