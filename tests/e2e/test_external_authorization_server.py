"""Resource-server-only mode against a real, independent authorization server.

node-oidc-provider (npm ``oidc-provider``) is the external authorization server, with resource
indicators (RFC 8707) issuing access tokens for Charter's MCP URL; ``charter serve
--authorization-server <issuer>`` is the protected MCP server in front of it. The official MCP
Python SDK client discovers the provider from Charter's 401 (RFC 9728), registers there (RFC
7591), signs in on the provider's own login and consent pages, and calls tools: once with JWT
access tokens checked by the provider's JWKS, once with opaque tokens checked by RFC 7662
introspection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl
from sqlalchemy import create_engine, inspect

from tests.support.charter_process import CharterProcess, charter_env, run_charter
from tests.support.live import free_port
from tests.support.oidc_provider import (
    RESOURCE_CLIENT_ID,
    RESOURCE_CLIENT_SECRET,
    OidcProvider,
    ProviderUser,
    run_oidc_provider,
)
from tests.support.sdk_client import REDIRECT_URI, MemoryStorage, Observed, structured

pytestmark = [pytest.mark.e2e]

SCOPES = "mcp notes:read notes:write"
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"


@contextmanager
def external_deployment(
    tmp_path: Path, access_token_format: str = "jwt", *extra: str
) -> Iterator[tuple[OidcProvider, CharterProcess]]:
    """node-oidc-provider for Charter's MCP URL, and ``charter serve`` in front of it."""
    port = free_port()
    mcp_url = f"http://127.0.0.1:{port}/mcp"
    resources = {mcp_url: SCOPES, "http://127.0.0.1:9/other": SCOPES}
    with run_oidc_provider(resources, access_token_format=access_token_format) as provider:
        env = charter_env()
        args = ["--authorization-server", provider.issuer, *extra]
        if access_token_format == "opaque":
            env["CHARTER_INTROSPECTION_CLIENT_SECRET"] = RESOURCE_CLIENT_SECRET
            args += ["--introspection-client-id", RESOURCE_CLIENT_ID]
        with run_charter(
            tmp_path / "data", *args, port=port, env=env, ready_path=PRM_PATH
        ) as charter:
            yield provider, charter


def sdk_provider(
    charter: CharterProcess, user: ProviderUser, storage: MemoryStorage
) -> OAuthClientProvider:
    async def redirect_handler(url: str) -> None:
        await user.authorize(url)

    async def callback_handler() -> AuthorizationCodeResult:
        assert user.last_redirect is not None
        params = user.last_redirect.params
        assert "error" not in params, dict(params)
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    metadata = OAuthClientMetadata(
        client_name="Charter SDK behind node-oidc-provider",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
        scope=SCOPES,
    )
    return OAuthClientProvider(
        server_url=charter.mcp_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


@asynccontextmanager
async def sdk_session(
    charter: CharterProcess, auth: OAuthClientProvider, observed: Observed
) -> AsyncIterator[Client]:
    hooks: dict[str, list[Any]] = {"response": [observed.on_response]}
    async with httpx2.AsyncClient(auth=auth, event_hooks=hooks, timeout=30) as http:
        async with Client(streamable_http_client(charter.mcp_url, http_client=http)) as client:
            yield client


async def sign_in_and_call_tools(
    provider: OidcProvider, charter: CharterProcess
) -> tuple[MemoryStorage, Observed, dict[str, Any]]:
    user, storage, observed = ProviderUser("alice"), MemoryStorage(), Observed()
    try:
        async with sdk_session(charter, sdk_provider(charter, user, storage), observed) as client:
            whoami = structured(await client.call_tool("whoami", {}))
            note = structured(
                await client.call_tool("notes_add", {"title": "t", "body": "from the SDK"})
            )
            listed = structured(await client.call_tool("notes_list", {}))
    finally:
        await user.aclose()
    assert user.pages[:2] == ["login", "consent"], user.pages
    return storage, observed, {"whoami": whoami, "note": note, "listed": listed}


def assert_discovered_from_the_401(observed: Observed, provider: OidcProvider) -> None:
    assert observed.statuses("/mcp")[0] == 401
    assert 200 in observed.statuses(PRM_PATH)
    assert 201 in observed.statuses("/reg"), observed.exchanges


async def test_sdk_signs_in_at_node_oidc_provider_with_jwt_access_tokens(tmp_path: Path) -> None:
    with external_deployment(tmp_path) as (provider, charter):
        async with httpx.AsyncClient() as http:
            prm = (await http.get(charter.base_url + PRM_PATH)).json()
            embedded = await http.get(charter.base_url + "/.well-known/oauth-authorization-server")
            authorize = await http.get(charter.base_url + "/authorize")
        storage, observed, calls = await sign_in_and_call_tools(provider, charter)
    assert prm["authorization_servers"] == [provider.issuer]
    assert prm["resource"] == charter.mcp_url
    assert embedded.status_code == 404 and authorize.status_code == 404
    assert_discovered_from_the_401(observed, provider)
    assert storage.tokens is not None and storage.tokens.access_token.count(".") == 2
    assert calls["whoami"]["subject"] == "alice"
    assert calls["listed"]["notes"][0]["title"] == "t"


async def test_sdk_signs_in_at_node_oidc_provider_with_opaque_tokens_and_introspection(
    tmp_path: Path,
) -> None:
    with external_deployment(tmp_path, "opaque") as (provider, charter):
        storage, observed, calls = await sign_in_and_call_tools(provider, charter)
        log = charter.stderr
    assert_discovered_from_the_401(observed, provider)
    assert storage.tokens is not None and "." not in storage.tokens.access_token
    assert calls["whoami"]["subject"] == "alice"
    assert calls["whoami"]["client_id"] == storage.client_info.client_id  # type: ignore[union-attr]
    assert calls["listed"]["notes"][0]["title"] == "t"
    assert storage.tokens.access_token not in log


async def mcp_status(charter: CharterProcess, token: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(charter.mcp_url, json=body, headers=headers)


@pytest.mark.parametrize("access_token_format", ["jwt", "opaque"])
async def test_s80_a_token_of_node_oidc_provider_for_another_audience_is_refused(
    tmp_path: Path, access_token_format: str
) -> None:
    with external_deployment(tmp_path, access_token_format) as (provider, charter):
        other = await provider.client_credentials_token("http://127.0.0.1:9/other")
        ours = await provider.client_credentials_token(charter.mcp_url)
        refused = await mcp_status(charter, other)
        garbage = await mcp_status(charter, "x" * 43)
        same_client_ours = await mcp_status(charter, ours)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "resource_metadata=" in refused.headers["www-authenticate"]
    assert garbage.status_code == 401
    # The same client's token for this resource: its JWT names the client as `sub` (RFC 9068
    # §2.2) and is accepted; its introspection answer names no subject, and is refused.
    assert same_client_ours.status_code == (200 if access_token_format == "jwt" else 401)


async def test_two_workers_on_postgresql_serve_behind_node_oidc_provider(
    tmp_path: Path, postgres_url: str
) -> None:
    extra = ("--workers", "2", "--database-url", postgres_url)
    with external_deployment(tmp_path, "opaque", *extra) as (provider, charter):
        storage, _observed, calls = await sign_in_and_call_tools(provider, charter)
    assert calls["whoami"]["subject"] == "alice"
    assert calls["listed"]["notes"][0]["title"] == "t"
    assert storage.tokens is not None
    engine = create_engine(postgres_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "rs_mcp_sessions" in tables and "rs_notes" in tables
    # No embedded authorization server: none of its tables (clients, users, tokens, keys).
    assert {name for name in tables if not name.startswith("rs_")} == set()


async def test_new_signing_keys_of_the_provider_are_picked_up_without_a_restart(
    tmp_path: Path,
) -> None:
    """The provider restarts with new keys (its issuer unchanged): Charter's cached JWKS lacks
    the new ``kid``, so it re-reads the JWKS once and accepts the new tokens."""
    provider_port, port = free_port(), free_port()
    mcp_url = f"http://127.0.0.1:{port}/mcp"
    resources = {mcp_url: SCOPES}
    with run_oidc_provider(resources, port=provider_port) as provider:
        args = ("--authorization-server", provider.issuer)
        with run_charter(tmp_path / "data", *args, port=port, ready_path=PRM_PATH) as charter:
            before = await mcp_status(charter, await provider.client_credentials_token(mcp_url))
            provider.process.terminate()
            provider.process.wait(timeout=10)
            with run_oidc_provider(resources, port=provider_port) as rotated:
                token = await rotated.client_credentials_token(mcp_url)
                after = await mcp_status(charter, token)
    assert before.status_code == 200
    assert after.status_code == 200, after.text
