"""S61: with the database down the authorization server answers 503 ``temporarily_unavailable``
(JSON, ``no-store``) and recovers when it returns; the resource server keeps validating tokens
already issued, from the keys it cached (RFC 6749 §5.2 error body; RFC 9068 §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.concurrency import run_in_threadpool

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.deployment import build_deployment, initialize
from authserver.endpoints.app import create_app
from resourceserver.errors import InvalidTokenError
from resourceserver.jwks import CallbackKeySource
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier
from tests.support.clock import Clock
from tests.support.factories import create_client
from tests.support.live import free_port, serve_app
from tests.support.reliability import (
    ISSUER,
    KEY_SECRET,
    RESOURCE,
    DatabaseOutage,
    build_worker,
    client_credentials_form,
    ready_worker,
    token_request,
)
from tests.support.tokens import make_signing_key, mint_access_token


def assert_unavailable(response: httpx.Response) -> None:
    """503 with the OAuth error body, not cacheable."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "temporarily_unavailable"


def confidential_client(server: AuthServer) -> dict[str, str]:
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    return client_credentials_form(client.client_id, secret)


def test_s61_running_server_answers_503_while_database_is_down(
    fresh_database_url: str, tmp_path: Path
) -> None:
    server = ready_worker(fresh_database_url, tmp_path / "data")
    form = confidential_client(server)
    outage = DatabaseOutage(server.database.engine)
    registration = {"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "outage"}
    try:
        with serve_app(create_app(server)) as url, httpx.Client(timeout=30) as http:
            assert token_request(http, url, form).status_code == 200
            outage.begin()
            assert_unavailable(token_request(http, url, form))
            assert_unavailable(http.post(f"{url}/register", json=registration))
            assert outage.attempts >= 2
            outage.end()
            recovered = token_request(http, url, form)
            assert recovered.status_code == 200, recovered.text
    finally:
        outage.remove()
        server.database.dispose()


@pytest.mark.parametrize("kind", ["postgres-closed-port", "sqlite-unopenable"])
def test_s61_unreachable_database_from_the_start_is_503(kind: str, tmp_path: Path) -> None:
    if kind == "postgres-closed-port":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/charter"
    else:
        (tmp_path / "a-directory").mkdir()
        url = f"sqlite:///{tmp_path / 'a-directory'}"
    server = build_worker(url, tmp_path / "data")
    form = client_credentials_form("some-client", "some-secret")
    try:
        with serve_app(create_app(server)) as base, httpx.Client(timeout=30) as http:
            assert_unavailable(token_request(http, base, form))
    finally:
        server.database.dispose()


class FailingAfterFirstLoad:
    """The embedded issuer's key view, read from the database on every call (no key cache)."""

    def __init__(self, server: AuthServer) -> None:
        self._server = server
        self.loads = 0
        self.failures = 0

    def _read(self) -> Mapping[str, Any]:
        self._server.keys.invalidate_cache()
        return self._server.keys.jwks()

    async def __call__(self) -> Mapping[str, Any]:
        self.loads += 1
        try:
            return await run_in_threadpool(self._read)
        except Exception:
            self.failures += 1
            raise


async def test_s61_resource_server_validates_with_cached_keys(
    fresh_database_url: str, tmp_path: Path
) -> None:
    server = ready_worker(fresh_database_url, tmp_path / "data")
    form = confidential_client(server)
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        first = (await http.post("/token", data=form)).json()["access_token"]
        second = (await http.post("/token", data=form)).json()["access_token"]
    fetch = FailingAfterFirstLoad(server)
    clock = Clock(1000.0)  # a monotonic clock the test moves
    verifier = JwtTokenVerifier(
        ResourceServerSettings(resource_url=RESOURCE, issuer=ISSUER, jwks_refresh_min_interval=0),
        CallbackKeySource(fetch, cache_ttl=10.0, clock=clock),
    )
    outage = DatabaseOutage(server.database.engine)
    try:
        assert (await verifier.verify(first)).client_id == form["client_id"]
        assert fetch.loads == 1
        outage.begin()
        clock.now += 60  # the cached key set is stale: the source tries to reload, and fails
        principal = await verifier.verify(second)
        assert principal.client_id == form["client_id"]
        assert fetch.failures >= 1
        # An unknown key still fails as a bad token (no crash, no 500-worthy error).
        stranger = make_signing_key("not-published")
        with pytest.raises(InvalidTokenError):
            await verifier.verify(mint_access_token(stranger, issuer=ISSUER, audience=RESOURCE))
    finally:
        outage.remove()
        server.database.dispose()


async def test_s61_deployment_mcp_path_answers_503_while_database_is_down(
    tmp_path: Path,
) -> None:
    settings = CharterSettings(
        issuer=ISSUER,
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'charter.db'}",
        key_encryption_key=KEY_SECRET,
    )
    server = AuthServer.build(settings)
    initialize(server, create_admin=False)
    deployment = build_deployment(settings, server=server)
    form = confidential_client(server)
    outage = DatabaseOutage(server.database.engine)
    transport = httpx.ASGITransport(app=deployment.app, raise_app_exceptions=False)
    initialize_call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "s61", "version": "1"},
        },
    }
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            token = (await http.post("/token", data=form)).json()["access_token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
            }
            before = await http.post("/mcp", headers=headers, json=initialize_call)
            assert before.status_code == 200, before.text
            outage.begin()
            during = await http.post("/mcp", headers=headers, json=initialize_call)
        assert during.status_code == 503, during.text
    finally:
        outage.remove()
        server.database.dispose()
