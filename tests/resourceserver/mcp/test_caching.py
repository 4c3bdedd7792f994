"""S71: caching hints (``ttlMs``, ``cacheScope``) on every cacheable 2026-07-28 result, and a
list that depends on the caller's scopes is never marked shareable between principals.
(MCP 2026-07-28 "Caching".)"""

from __future__ import annotations

from pathlib import Path

from resourceserver.mcp import Registry
from resourceserver.mcp.transport import TransportOptions
from resourceserver.tools import builtin_registry
from tests.support.mcp_harness import database
from tests.support.modern_mcp import ModernApp, ModernHttp, modern_app


def unscoped() -> Registry:
    registry = Registry(list_ttl_ms=120_000)
    for index in range(5):

        def tool(index: int = index) -> str:
            """Same for everyone."""
            return str(index)

        registry.tool(name=f"t{index}")(tool)

    @registry.resource("test://shared", cache_ttl_ms=30_000, cache_scope="public")
    def shared() -> str:
        """The same for every user."""
        return "shared"

    @registry.resource("test://mine")
    def mine() -> str:
        """Per user, by default not cached."""
        return "mine"

    @registry.resource("test://item/{id}")
    def item(id: str) -> str:
        """A template."""
        return id

    @registry.prompt()
    def hello() -> str:
        """A prompt."""
        return "hello"

    return registry


async def hints(app: ModernApp, method: str, **params: object) -> tuple[int, str]:
    async with app.client() as client:
        result = await ModernHttp(client, app.token()).result(method, dict(params))
    assert isinstance(result["ttlMs"], int) and result["ttlMs"] >= 0
    return result["ttlMs"], result["cacheScope"]


async def test_s71_scope_dependent_tool_lists_are_private_on_every_page(tmp_path: Path) -> None:
    engine = database(tmp_path / "rs.db")
    app = modern_app(builtin_registry(engine), engine, TransportOptions(page_size=2))
    seen_scopes = set()
    async with app.client() as client:
        for scope in ("mcp", "mcp notes:read notes:write"):
            mcp = ModernHttp(client, app.token(scope=scope))
            cursor = None
            while True:
                result = await mcp.result("tools/list", {"cursor": cursor} if cursor else {})
                seen_scopes.add(result["cacheScope"])
                cursor = result.get("nextCursor")
                if not cursor:
                    break
    # notes tools need notes:* scopes: what a caller sees depends on its token.
    assert seen_scopes == {"private"}


async def test_s71_lists_that_are_the_same_for_everyone_are_public(tmp_path: Path) -> None:
    app = modern_app(unscoped(), database(tmp_path / "rs.db"), TransportOptions(page_size=2))
    assert await hints(app, "tools/list") == (120_000, "public")
    assert await hints(app, "tools/list", cursor="bzoy") == (120_000, "public")  # page 2
    assert await hints(app, "prompts/list") == (120_000, "public")
    assert await hints(app, "resources/list") == (120_000, "public")
    assert await hints(app, "resources/templates/list") == (120_000, "public")
    assert await hints(app, "server/discover") == (120_000, "public")


async def test_s71_resource_reads_are_private_and_uncached_unless_the_author_says(
    tmp_path: Path,
) -> None:
    app = modern_app(unscoped(), database(tmp_path / "rs.db"))
    assert await hints(app, "resources/read", uri="test://mine") == (0, "private")
    assert await hints(app, "resources/read", uri="test://item/7") == (0, "private")
    assert await hints(app, "resources/read", uri="test://shared") == (30_000, "public")


async def test_s71_handshake_era_results_are_unchanged(tmp_path: Path) -> None:
    app = modern_app(builtin_registry(database(tmp_path / "a.db")), database(tmp_path / "a.db"))
    async with app.client() as client:
        response = await client.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
            },
            headers={"Authorization": f"Bearer {app.token()}", "Accept": "application/json"},
        )
        session = response.headers["mcp-session-id"]
        listed = await client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {app.token()}",
                "Accept": "application/json",
                "Mcp-Session-Id": session,
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
    result = listed.json()["result"]
    assert "ttlMs" not in result and "cacheScope" not in result and "resultType" not in result
