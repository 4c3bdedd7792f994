"""Metadata (RFC 8414) and the JWKS; key rotation keeps old keys published (S63)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from authserver.context import AuthServer
from tests.support.clock import Clock


async def test_metadata_issuer_exact_and_s256_only(as_client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = await as_client.get(path)
        assert response.status_code == 200
        document = response.json()
        assert document["issuer"] == "http://127.0.0.1:8000"
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["response_types_supported"] == ["code"]
        assert document["authorization_response_iss_parameter_supported"] is True
        assert {"none", "client_secret_basic", "client_secret_post"} <= set(
            document["token_endpoint_auth_methods_supported"]
        )
        assert document["client_id_metadata_document_supported"] is True
        assert response.headers["access-control-allow-origin"] == "*"


async def test_jwks_publishes_signing_key(
    as_client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await as_client.get("/jwks.json")
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == [auth_server.keys.signing_key().kid]
    assert all("d" not in key for key in keys)
    assert keys[0]["alg"] == "ES256"


def test_s63_rotation_keeps_old_key_published(make_server: Callable[..., AuthServer]) -> None:
    auth_server = make_server(key_publish_ahead_seconds=0)
    old = auth_server.keys.signing_key().kid
    new_row = auth_server.keys.rotate()
    published = {key["kid"] for key in auth_server.keys.jwks()["keys"]}
    assert {old, new_row.kid} <= published
    assert auth_server.keys.signing_key().kid == new_row.kid


def test_s63_new_key_published_before_it_signs(make_server: object) -> None:
    clock = Clock()
    server = make_server(clock=clock, key_publish_ahead_seconds=600)  # type: ignore[operator]
    old = server.keys.signing_key().kid
    new_row = server.keys.rotate()
    assert new_row.kid in {key["kid"] for key in server.keys.jwks()["keys"]}
    server.keys.invalidate_cache()
    assert server.keys.signing_key().kid == old
    clock.now += 601
    server.keys.invalidate_cache()
    assert server.keys.signing_key().kid == new_row.kid
    clock.now += server.settings.access_token_ttl + server.settings.leeway_seconds + 10
    server.keys.invalidate_cache()
    assert old not in {key["kid"] for key in server.keys.jwks()["keys"]}


@pytest.mark.parametrize("workers", [3])
def test_s59_start_up_key_creation_idempotent(auth_server: AuthServer, workers: int) -> None:
    created = [auth_server.keys.ensure_signing_key() for _ in range(workers)]
    assert created == [False] * workers
    assert len(auth_server.keys.list_keys()) == 1
