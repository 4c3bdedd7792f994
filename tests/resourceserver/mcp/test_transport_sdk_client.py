"""The official MCP Python SDK (2.x) as a client of Charter's MCP server over a real socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

httpx2 = pytest.importorskip("httpx2")
client_module = pytest.importorskip("mcp.client.client")
streamable = pytest.importorskip("mcp.client.streamable_http")
types = pytest.importorskip("mcp.types")

from resourceserver.mcp import load_tool_modules  # noqa: E402
from resourceserver.tools import builtin_registry  # noqa: E402
from tests.support.mcp_harness import database, serve  # noqa: E402


async def sampling(context: Any, params: Any) -> Any:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sdk says hi"), model="m"
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("mode", "negotiated"),
    # Pinned to the handshake era, and the SDK's default (probes server/discover first).
    [("legacy", "2025-11-25"), ("auto", "2026-07-28")],
)
async def test_official_sdk_client_lists_and_calls_tools(
    tmp_path: Path, mode: str, negotiated: str
) -> None:
    engine = database(tmp_path / "rs.db")
    registry = builtin_registry(engine)
    load_tool_modules(["tests.conformance.tools"], into=registry)
    with serve(registry, engine) as server:
        auth = {"Authorization": f"Bearer {server.token()}"}
        async with httpx2.AsyncClient(headers=auth) as http:
            transport = streamable.streamable_http_client(server.url, http_client=http)
            client = client_module.Client(transport, sampling_callback=sampling, mode=mode)
            async with client:
                assert client.protocol_version == negotiated
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert {"whoami", "notes_add", "test_sampling"} <= names
                me = await client.call_tool("whoami", {})
                assert me.structured_content["subject"] == "alice"
                sampled = await client.call_tool("test_sampling", {"prompt": "hello"})
                assert sampled.content[0].text == "LLM response: sdk says hi"
                added = await client.call_tool("notes_add", {"title": "from the SDK"})
                assert added.structured_content["title"] == "from the SDK"
                wrong = await client.call_tool("notes_add", {"title": 5})
                assert wrong.is_error
                assert "argument 'title': Input should be a valid string, got 5" in (
                    wrong.content[0].text
                )
