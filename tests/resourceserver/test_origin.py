"""OriginGuard: DNS-rebinding protection by Origin and Host (SECURITY-CASES S43)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from resourceserver.origin import OriginGuard, OriginPolicy
from tests.support.resource_auth import make_settings


def _app(**overrides: Any) -> OriginGuard:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    inner = Starlette(
        routes=[Route("/mcp", hello, methods=["GET", "POST"]), WebSocketRoute("/ws", socket)]
    )
    return OriginGuard(inner, make_settings(**overrides))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = _app(allowed_origins=("https://app.example.org",), allowed_hosts=("mcp.internal:8443",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        yield c


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://mcp.example.com.evil.example",
        "http://mcp.example.com",  # scheme differs from the resource's origin
        "https://mcp.example.com:8443",  # port differs
        "null",
        "file://",
        "https://app.example.org:444",
        "https://user@mcp.example.com",
        "not an origin",
    ],
)
async def test_s43_foreign_origin_is_403(client: httpx.AsyncClient, origin: str) -> None:
    response = await client.post("/mcp", headers={"Origin": origin})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "origin",
    [
        "https://mcp.example.com",
        "HTTPS://MCP.EXAMPLE.COM:443",
        "http://localhost:6274",
        "http://localhost",
        "http://127.0.0.1:3000",
        "http://[::1]:8080",
        "https://app.example.org",
    ],
)
async def test_s43_own_loopback_and_configured_origins_accepted(
    client: httpx.AsyncClient, origin: str
) -> None:
    response = await client.post("/mcp", headers={"Origin": origin})
    assert response.status_code == 200


async def test_s43_no_origin_passes(client: httpx.AsyncClient) -> None:
    assert (await client.post("/mcp")).status_code == 200


async def test_s43_two_origin_headers_rejected(client: httpx.AsyncClient) -> None:
    headers = [("Origin", "https://mcp.example.com"), ("Origin", "https://evil.example")]
    assert (await client.post("/mcp", headers=headers)).status_code == 403


@pytest.mark.parametrize(
    "host",
    ["evil.example", "attacker.example:8000", "mcp.internal:9999", "a b", "u@mcp.example.com"],
)
async def test_s43_foreign_host_is_403(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get("/mcp", headers={"Host": host})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "host",
    [
        "mcp.example.com",
        "MCP.example.com:443",
        "localhost:8000",
        "127.0.0.1:1234",
        "[::1]:8000",
        "localhost",
        "mcp.internal:8443",
    ],
)
async def test_s43_own_loopback_and_configured_hosts_accepted(
    client: httpx.AsyncClient, host: str
) -> None:
    assert (await client.get("/mcp", headers={"Host": host})).status_code == 200


def test_s43_websocket_from_foreign_origin_closed() -> None:
    with TestClient(_app(allowed_hosts=("testserver",))) as test_client:
        with test_client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hi"
        with pytest.raises(WebSocketDisconnect) as info:
            with test_client.websocket_connect("/ws", headers={"Origin": "https://evil.example"}):
                pass
        assert info.value.code == 1008


def test_policy_allows_host_entries_without_port_on_every_port() -> None:
    policy = OriginPolicy(make_settings(allowed_hosts=("gateway.local",)))
    assert policy.host_allowed("gateway.local:1")
    assert policy.host_allowed("gateway.local")
    assert not policy.host_allowed("gateway.local.evil")
