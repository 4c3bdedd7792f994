"""Protected resource metadata (RFC 9728 §2-§3, SECURITY-CASES S42)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from joserfc.jwk import Key
from starlette.applications import Starlette

from resourceserver.metadata import metadata_routes
from tests.support.resource_auth import (
    ISSUER,
    PRM_URL,
    RESOURCE,
    RESOURCE_ORIGIN,
    CountingKeySource,
    FakeClock,
    build_app,
    challenge_params,
    client_for,
    make_settings,
    make_verifier,
)
from tests.support.tokens import jwks_of, make_signing_key

PATHS = ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]


@pytest.fixture
def app() -> Starlette:
    key: Key = make_signing_key()
    settings = make_settings()
    return build_app(
        settings, make_verifier(settings, CountingKeySource(jwks_of(key)), FakeClock())
    )


@pytest.mark.parametrize("path", PATHS)
async def test_s42_prm_document(app: Starlette, path: str) -> None:
    async with client_for(app) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp", "notes:read", "notes:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Charter MCP server",
    }


async def test_s42_discovery_from_the_challenge_names_the_url_the_client_used(
    app: Starlette,
) -> None:
    """Follow the 401 like a client: PRM ``resource`` must equal the URL that was called."""
    called = f"{RESOURCE_ORIGIN}/mcp"
    async with client_for(app) as client:
        challenge = await client.post(called)
        metadata_url = challenge_params(challenge)["resource_metadata"]
        assert metadata_url == PRM_URL
        document = (await client.get(metadata_url)).json()
    assert document["resource"] == called
    assert document["authorization_servers"] == [ISSUER]


@pytest.mark.parametrize(
    ("issuer", "resource"),
    [
        ("https://login.example.com/tenant/", "https://api.example.com/v1/mcp"),
        ("http://localhost:9000", "http://localhost:9000/mcp"),
    ],
)
async def test_s42_values_are_exact_not_normalised(issuer: str, resource: str) -> None:
    settings = make_settings(issuer=issuer, resource_url=resource)
    app = Starlette(routes=metadata_routes(settings))
    parts = urlsplit(resource)
    path_inserted = urlsplit(settings.resource_metadata_url).path
    assert path_inserted == f"/.well-known/oauth-protected-resource{parts.path}"
    async with client_for(app, base_url=f"{parts.scheme}://{parts.netloc}") as client:
        for path in (path_inserted, "/.well-known/oauth-protected-resource"):
            document = (await client.get(path)).json()
            assert document["resource"] == resource
            assert document["authorization_servers"] == [issuer]


def test_s42_root_resource_gets_one_route() -> None:
    settings = make_settings(resource_url="https://mcp.example.com/")
    assert len(metadata_routes(settings)) == 1


async def test_s42_prm_cors_preflight(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.options(
            PATHS[0],
            headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "GET"},
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]


async def test_prm_is_read_only(app: Starlette) -> None:
    async with client_for(app) as client:
        assert (await client.post(PATHS[0])).status_code == 405
