"""McpGate: the MCP path's error answers and Origin/Host guard in one layer
(resourceserver.direct; SECURITY-CASES S43, S61), and the browser page it serves first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from resourceserver.direct import McpGate
from tests.support.resource_auth import make_settings

Inner = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


def _gate(inner: Inner = _hello, **overrides: Any) -> McpGate:
    return McpGate(inner, make_settings(allowed_origins=("https://app.example.org",), **overrides))


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com")


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://mcp.example.com"])
async def test_s43_gate_refuses_a_foreign_origin(origin: str) -> None:
    async with _client(_gate()) as client:
        response = await client.post("/mcp", headers={"Origin": origin})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


async def test_s43_gate_refuses_a_foreign_host_and_passes_its_own() -> None:
    async with _client(_gate()) as client:
        foreign = await client.post("/mcp", headers={"Host": "attacker.example"})
        own = await client.post("/mcp", headers={"Origin": "https://app.example.org"})
    assert foreign.status_code == 403
    assert (own.status_code, own.text) == (200, "hello")


async def test_s61_gate_answers_a_database_error_with_503() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise OperationalError("SELECT 1", None, Exception("database is down"))

    async with _client(_gate(broken)) as client:
        response = await client.post("/mcp")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "temporarily_unavailable"


async def test_any_other_failure_is_a_plain_500_and_is_raised_again() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("a bug")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    with pytest.raises(ValueError, match="a bug"):
        await _gate(broken)(scope, receive, send)
    assert sent[0]["status"] == 500


async def test_a_failure_after_the_response_started_is_raised_without_a_second_answer() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise OperationalError("SELECT 1", None, Exception("gone mid-stream"))

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/mcp", "headers": []}
    with pytest.raises(OperationalError):
        await _gate(half)(scope, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start"]


async def test_the_browser_page_is_asked_first_and_only_its_requests_get_it() -> None:
    gate = _gate()

    def page_for(scope: Scope) -> Response | None:
        return HTMLResponse("<p>page</p>") if scope["method"] == "GET" else None

    gate.browser_page = page_for
    async with _client(gate) as client:
        page = await client.get("/mcp", headers={"Origin": "https://evil.example"})
        call = await client.post("/mcp")
    assert page.text == "<p>page</p>"  # before the origin check, as the outer wrapper did
    assert call.text == "hello"


async def test_other_scope_types_pass_the_same_layers() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    await _gate(inner)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
