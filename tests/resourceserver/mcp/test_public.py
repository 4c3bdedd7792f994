"""S83, S74 (public half): anonymous callers of a server with public tools, prompts and resources
see and use only those, in both protocol eras; anything else is a 401 naming the scope it needs
(step-up); a server without public items still wants a token for everything; anonymous traffic
has its own rate limit; a session opened anonymously is adopted by the first signed-in caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from resourceserver.anonymous import AnonymousLimiter, address_key
from resourceserver.mcp import Registry
from resourceserver.mcp.errors import DefinitionError
from tests.support.clock import Clock
from tests.support.mcp_harness import ACCEPT_BOTH, McpHttp, database, local_app
from tests.support.modern_mcp import ModernHttp, modern_app

PRM = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"


def public_registry() -> Registry:
    registry = Registry(name="mixed")

    @registry.tool(public=True)
    def echo(text: str) -> str:
        "Echo the text back (anyone may call it)."
        return text

    @registry.tool
    def whoami() -> str:
        "The caller's subject (signed-in callers only)."
        return "someone"

    @registry.tool(scopes={"notes:write"})
    def secret_write(text: str) -> str:
        "Needs notes:write."
        return text

    @registry.prompt(public=True)
    def greet(name: str) -> str:
        "A public greeting."
        return f"Hello {name}"

    @registry.prompt
    def private_prompt() -> str:
        "Signed-in only."
        return "psst"

    @registry.resource("info://public", public=True)
    def public_info() -> str:
        "Public."
        return "open"

    @registry.resource("info://private")
    def private_info() -> str:
        "Private."
        return "closed"

    return registry


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return database(tmp_path / "rs.db")


class Anonymous(McpHttp):
    """The hand-rolled handshake-era client without any Authorization header."""

    def headers(self, **extra: str) -> dict[str, str]:
        headers = super().headers(**extra)
        if not self.token:
            headers.pop("Authorization")
        return headers


def names(result: dict[str, Any], key: str, field: str = "name") -> list[str]:
    return sorted(item[field] for item in result["result"][key])


async def test_s83_anonymous_lists_and_calls_only_public_items(engine: Engine) -> None:
    app = local_app(public_registry(), engine)
    async with app.client() as client:
        mcp = Anonymous(client, "/mcp", "")
        await mcp.initialize()
        assert names(await mcp.call("tools/list"), "tools") == ["echo"]
        assert names(await mcp.call("prompts/list"), "prompts") == ["greet"]
        assert names(await mcp.call("resources/list"), "resources", "uri") == ["info://public"]
        called = await mcp.call("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert called["result"]["content"][0]["text"] == "hi"
        prompt = await mcp.call("prompts/get", {"name": "greet", "arguments": {"name": "Ann"}})
        assert prompt["result"]["messages"][0]["content"]["text"] == "Hello Ann"
        read = await mcp.call("resources/read", {"uri": "info://public"})
        assert read["result"]["contents"][0]["text"] == "open"
        # Validation errors are the same for anonymous callers.
        invalid = await mcp.call("tools/call", {"name": "echo", "arguments": {}})
        assert invalid["result"]["isError"] is True
        assert "text" in invalid["result"]["content"][0]["text"]
        # Signed in, everything the token's scopes allow is listed.
        signed_in = McpHttp(client, "/mcp", app.token())
        await signed_in.initialize()
        listed = names(await signed_in.call("tools/list"), "tools")
        assert listed == ["echo", "secret_write", "whoami"]


@pytest.mark.parametrize(
    ("method", "params", "scope"),
    [
        ("tools/call", {"name": "whoami", "arguments": {}}, "mcp"),
        ("tools/call", {"name": "secret_write", "arguments": {"text": "x"}}, "mcp notes:write"),
        ("tools/call", {"name": "no_such_tool", "arguments": {}}, "mcp"),
        ("prompts/get", {"name": "private_prompt"}, "mcp"),
        ("resources/read", {"uri": "info://private"}, "mcp"),
        ("resources/subscribe", {"uri": "info://private"}, "mcp"),
    ],
    ids=["protected", "scoped", "unknown", "prompt", "resource", "subscribe"],
)
async def test_s83_anything_not_public_is_401_with_the_scope_it_needs(
    engine: Engine, method: str, params: dict[str, Any], scope: str
) -> None:
    app = local_app(public_registry(), engine)
    async with app.client() as client:
        mcp = Anonymous(client, "/mcp", "")
        await mcp.initialize()
        response, _ = await mcp.request(method, params)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge == f'Bearer resource_metadata="{PRM}", scope="{scope}"'
    assert "error=" not in challenge  # no token was sent: no error code (RFC 6750 §3.1)


async def test_s83_a_bad_token_is_never_downgraded_to_anonymous(engine: Engine) -> None:
    app = local_app(public_registry(), engine)
    async with app.client() as client:
        forged = McpHttp(client, "/mcp", app.token()[:-4] + "AAAA")
        response = await forged.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_s83_without_public_items_every_request_needs_a_token(engine: Engine) -> None:
    registry = Registry()

    @registry.tool
    def only_signed_in() -> str:
        "Protected."
        return "x"

    app = local_app(registry, engine)
    async with app.client() as client:
        mcp = Anonymous(client, "/mcp", "")
        response = await mcp.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}},
            }
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{PRM}", scope="mcp"'


async def test_s83_a_session_opened_anonymously_is_adopted_at_sign_in(engine: Engine) -> None:
    app = local_app(public_registry(), engine)
    async with app.client() as client:
        mcp = Anonymous(client, "/mcp", "")
        await mcp.initialize()
        session = mcp.session
        denied, _ = await mcp.request("tools/call", {"name": "whoami", "arguments": {}})
        assert denied.status_code == 401
        # The client signs in and repeats the request on the same session.
        mcp.token = app.token(subject="bob")
        again = await mcp.call("tools/call", {"name": "whoami", "arguments": {}})
        assert again["result"]["isError"] is False
        assert mcp.session == session
        # From now on the session is bob's: anonymous and other users get "not found".
        intruder = Anonymous(client, "/mcp", "")
        intruder.session = session
        stolen, _ = await intruder.request("tools/list")
        assert stolen.status_code == 404
        other = McpHttp(client, "/mcp", app.token(subject="eve"))
        other.session = session
        foreign, _ = await other.request("tools/list")
        assert foreign.status_code == 404


async def test_s83_anonymous_batches_of_protected_calls_are_refused(engine: Engine) -> None:
    app = local_app(public_registry(), engine)
    async with app.client() as client:
        mcp = Anonymous(client, "/mcp", "")
        await mcp.initialize(version="2025-03-26")
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami"}},
        ]
        response = await client.post("/mcp", json=batch, headers=mcp.headers())
    assert response.status_code == 401
    assert 'scope="mcp"' in response.headers["www-authenticate"]


async def test_s83_modern_anonymous_calls_public_tools_only(engine: Engine) -> None:
    server = modern_app(public_registry(), engine)
    async with server.client() as client:
        anonymous = ModernHttp(client, "unused")
        no_token = {"Authorization": None}
        listed = await anonymous.result("tools/list", headers=no_token)
        assert [tool["name"] for tool in listed["tools"]] == ["echo"]
        assert listed["cacheScope"] == "private"
        called = await anonymous.result(
            "tools/call", {"name": "echo", "arguments": {"text": "yo"}}, headers=no_token
        )
        assert called["content"][0]["text"] == "yo"
        refused = await anonymous.post(
            "tools/call", {"name": "whoami", "arguments": {}}, headers=no_token
        )
        assert refused.status_code == 401
        assert 'scope="mcp"' in refused.headers["www-authenticate"]
        tasks = await anonymous.post("tasks/get", {"taskId": "x"}, headers=no_token)
        assert tasks.status_code in (400, 401)


async def test_s74_discover_without_a_token_shows_only_public_capabilities(
    engine: Engine,
) -> None:
    registry = Registry()

    @registry.tool(public=True)
    def ping_tool() -> str:
        "Public."
        return "pong"

    @registry.prompt
    def private_prompt() -> str:
        "Signed-in only."
        return "x"

    server = modern_app(registry, engine)
    async with server.client() as client:
        anonymous = ModernHttp(client, "unused")
        shown = await anonymous.result("server/discover", headers={"Authorization": None})
        signed_in = await ModernHttp(client, server.token()).result("server/discover")
    assert set(shown["capabilities"]) == {"tools", "logging"}
    assert {"tools", "prompts", "extensions"} <= set(signed_in["capabilities"])


async def test_s83_anonymous_traffic_is_rate_limited_apart(engine: Engine) -> None:
    app = local_app(public_registry(), engine)
    endpoint_limiter = app.app.state.anonymous_limiter
    assert isinstance(endpoint_limiter, AnonymousLimiter)
    endpoint_limiter.per_minute = 3
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {}}
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
    async with app.client() as client:
        statuses = []
        for _ in range(4):
            response = await client.post("/mcp", json=body, headers=headers)
            statuses.append(response.status_code)
        assert statuses[3] == 429
        assert int(response.headers["retry-after"]) >= 1
        # Signed-in traffic is not counted against the anonymous limit.
        mcp = McpHttp(client, "/mcp", app.token())
        await mcp.initialize()
        assert (await mcp.call("tools/list"))["result"]["tools"]


def test_s83_the_anonymous_window_is_per_address_and_minute() -> None:
    clock = Clock()
    limiter = AnonymousLimiter(2, clock=clock)
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") == 60
    assert limiter.admit("10.0.0.2") is None
    # One IPv6 host is one /64.
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    clock.advance(60)
    assert limiter.admit("10.0.0.1") is None
    assert AnonymousLimiter(0).admit("10.0.0.1") == 60


def test_s83_a_public_tool_cannot_need_scopes() -> None:
    registry = Registry()
    with pytest.raises(DefinitionError, match="public tool"):

        @registry.tool(public=True, scopes={"notes:write"})
        def both() -> str:
            "Contradiction."
            return ""
