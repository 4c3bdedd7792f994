"""The official MCP Python SDK's HTTP+SSE client (MCP 2024-11-05 transport) against
``charter serve``: OAuth from the stream's 401, then tools listed and called over ``/sse`` and
``/messages`` (REAL-CLIENTS.md §2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client

from tests.support.charter_process import run_charter
from tests.support.headless import HeadlessUser
from tests.support.sdk_client import MemoryStorage, make_provider, structured

pytestmark = pytest.mark.e2e


async def test_sdk_sse_client_signs_in_lists_tools_and_calls_one(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        storage = MemoryStorage()
        provider = make_provider(charter, user, storage)
        try:
            transport = sse_client(charter.base_url + "/sse", auth=provider)
            async with Client(transport, cache=None) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert tools == {"whoami"}
                me = structured(await client.call_tool("whoami", {}))
                assert storage.client_info is not None
                assert me["client_id"] == storage.client_info.client_id
                assert me["scopes"] == ["mcp"]
        finally:
            await user.aclose()
        assert len(user.authorize_urls) == 1
        assert storage.tokens is not None
        assert storage.tokens.access_token not in charter.stderr
