"""MCP 2026-07-28 (SEP-837): dynamic registration accepts and stores ``application_type`` and
applies its redirect rules (OpenID Connect Dynamic Client Registration 1.0 §2); without it the
RFC 8252 rules alone apply, as before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authserver.context import AuthServer
from authserver.storage.models import Client

BASE: dict[str, Any] = {
    "client_name": "App",
    "grant_types": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_method": "none",
}

ACCEPTED = [
    ("native", "http://127.0.0.1:53682/callback"),
    ("native", "http://localhost/cb"),
    ("native", "http://[::1]:8080/cb"),
    ("native", "com.example.app:/oauth"),
    ("web", "https://app.example.com/callback"),
]
REFUSED = [
    ("native", "https://app.example.com/callback"),
    ("web", "http://127.0.0.1:53682/callback"),
    ("web", "https://localhost/callback"),
    ("web", "com.example.app:/oauth"),
]


@pytest.mark.parametrize(("kind", "uri"), ACCEPTED)
async def test_application_type_is_stored_and_returned(
    as_client: httpx.AsyncClient, auth_server: AuthServer, kind: str, uri: str
) -> None:
    response = await as_client.post(
        "/register", json={**BASE, "application_type": kind, "redirect_uris": [uri]}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["application_type"] == kind
    with auth_server.database.transaction() as session:
        row = session.get(Client, body["client_id"])
        assert row is not None
        assert row.client_metadata["application_type"] == kind
    read = await as_client.get(
        body["registration_client_uri"].removeprefix(str(as_client.base_url)),
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert read.json()["application_type"] == kind


@pytest.mark.parametrize(("kind", "uri"), REFUSED)
async def test_redirect_uris_must_suit_the_application_type(
    as_client: httpx.AsyncClient, kind: str, uri: str
) -> None:
    response = await as_client.post(
        "/register", json={**BASE, "application_type": kind, "redirect_uris": [uri]}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"
    assert "application_type" in response.json()["error_description"]


async def test_unknown_application_type_is_refused(as_client: httpx.AsyncClient) -> None:
    for value in ("desktop", 7, ""):
        response = await as_client.post(
            "/register",
            json={**BASE, "application_type": value, "redirect_uris": ["http://127.0.0.1/cb"]},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata"


async def test_without_application_type_the_earlier_rules_apply(
    as_client: httpx.AsyncClient,
) -> None:
    for uri in ("http://127.0.0.1:1/cb", "https://app.example.com/cb", "com.example.app:/cb"):
        response = await as_client.post("/register", json={**BASE, "redirect_uris": [uri]})
        assert response.status_code == 201, response.text
        assert "application_type" not in response.json()


async def test_metadata_prefers_client_id_metadata_documents_and_sends_iss(
    as_client: httpx.AsyncClient,
) -> None:
    document = (await as_client.get("/.well-known/oauth-authorization-server")).json()
    assert document["client_id_metadata_document_supported"] is True
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["registration_endpoint"].endswith("/register")  # DCR stays available
