"""The official MCP Python SDK's HTTP+SSE client (MCP 2024-11-05 transport) against
``charter serve``: OAuth from the stream's 401, then tools listed and called over ``/sse`` and
``/messages`` (REAL-CLIENTS.md §2)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client

from tests.e2e.test_several_servers import Server, readme_block
from tests.support.charter_process import charter_env, run_charter
from tests.support.headless import HeadlessUser
from tests.support.live import free_port
from tests.support.oauth_flow import obtain_tokens
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


class PostsToOtherWorker(httpx2.AsyncHTTPTransport):
    """Sends every POST to the message endpoint to another ``charter serve`` (worker B);
    everything else (the SSE stream, the OAuth flow) goes where it was addressed (worker A)."""

    def __init__(self, other_port: int) -> None:
        super().__init__()
        self.other_port = other_port
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path == "/messages":
            request.url = request.url.copy_with(port=self.other_port)
            response = await super().handle_async_request(request)
            self.statuses.append(response.status_code)
            return response
        return await super().handle_async_request(request)


@pytest.mark.postgres
async def test_sdk_sse_stream_on_worker_a_gets_answers_to_posts_at_worker_b(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two ``charter serve`` processes on one PostgreSQL database (one issuer): the stream is
    held by A, every message is POSTed to B, and B's answers reach A's stream."""
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    common = ("--database-url", postgres_url, "--issuer", issuer)
    data = tmp_path / "data"
    with (
        run_charter(data, *common, port=port_a) as worker_a,
        run_charter(data, *common, port=port_b) as worker_b,
    ):
        assert worker_a.admin_password is not None
        user = HeadlessUser("admin", worker_a.admin_password)
        storage = MemoryStorage()
        provider = make_provider(worker_a, user, storage)
        rewrite = PostsToOtherWorker(port_b)

        def client_factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(
                headers=headers, timeout=timeout or 30, auth=auth, transport=rewrite
            )

        try:
            transport = sse_client(
                worker_a.base_url + "/sse", auth=provider, httpx_client_factory=client_factory
            )
            async with Client(transport, cache=None) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert tools == {"whoami"}
                for _ in range(3):
                    me = structured(await client.call_tool("whoami", {}))
                    assert me["scopes"] == ["mcp"]
        finally:
            await user.aclose()
        # Every message went to B and was accepted there; the answers came from A's stream.
        assert len(rewrite.statuses) >= 5, rewrite.statuses
        assert set(rewrite.statuses) == {202}, rewrite.statuses
        assert storage.tokens is not None
        delays = await cross_worker_delays(worker_a.base_url, worker_b.base_url, storage)
        print(f"POST at B -> event on A's stream: median {statistics.median(delays) * 1000:.1f} ms")
        assert statistics.median(delays) < 1.0


async def cross_worker_delays(base_a: str, base_b: str, storage: MemoryStorage) -> list[float]:
    """Seconds from each ``ping`` POSTed at B to its answer on A's stream."""
    assert storage.tokens is not None
    auth = {"Authorization": f"Bearer {storage.tokens.access_token}"}
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}},
    }
    delays = []
    async with (
        httpx.AsyncClient(timeout=30, headers=auth) as http,
        http.stream("GET", base_a + "/sse") as stream,
    ):
        lines = stream.aiter_lines()

        async def data() -> str:
            async for line in lines:
                if line.startswith("data: "):
                    return line.removeprefix("data: ")
            raise EOFError

        endpoint = await data()
        assert (await http.post(base_b + endpoint, json=init)).status_code == 202
        assert json.loads(await data())["id"] == 0
        for index in range(1, 21):
            began = time.perf_counter()
            ping = {"jsonrpc": "2.0", "id": index, "method": "ping"}
            assert (await http.post(base_b + endpoint, json=ping)).status_code == 202
            assert json.loads(await asyncio.wait_for(data(), 10))["id"] == index
            delays.append(time.perf_counter() - began)
    return delays


async def test_s85_each_declared_server_has_its_own_sse_endpoint(tmp_path: Path) -> None:
    """The README's echo server at ``/echo/mcp`` streams at ``/echo/sse``; its streams are
    unknown to the default server's message endpoint, and each refuses the other's tokens."""
    (tmp_path / "servers.toml").write_text(readme_block("# servers.toml"), encoding="utf-8")
    (tmp_path / "echo_tools.py").write_text(readme_block("# echo_tools.py"), encoding="utf-8")
    args = ("--mcp-servers-file", "servers.toml")
    # The project first on the path: started from ``tmp_path`` (for ``echo_tools``), the
    # process must still import this checkout rather than another installed copy.
    env = charter_env(PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    with run_charter(tmp_path / "data", *args, cwd=tmp_path, env=env) as charter:
        base = charter.base_url
        echo = await obtain_tokens(Server(charter, "/echo/mcp"), "mcp echo:write")  # type: ignore[arg-type]
        default = await obtain_tokens(charter, "mcp")
        echo_auth = {"Authorization": f"Bearer {echo.access_token}"}
        default_auth = {"Authorization": f"Bearer {default.access_token}"}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}},
        }
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", base + "/echo/sse", headers=echo_auth) as stream,
        ):
            assert stream.status_code == 200, (stream.headers, await stream.aread())
            lines = stream.aiter_lines()

            async def data() -> str:
                async for line in lines:
                    if line.startswith("data: "):
                        return line.removeprefix("data: ")
                raise EOFError

            endpoint = await asyncio.wait_for(data(), 10)
            assert endpoint.startswith("/echo/messages?session_id=")
            posted = await http.post(base + endpoint, json=init, headers=echo_auth)
            assert posted.status_code == 202
            reply = json.loads(await asyncio.wait_for(data(), 10))
            assert reply["result"]["serverInfo"]["name"] == "Echo tools"
            assert (
                await http.post(base + endpoint, json=listing, headers=echo_auth)
            ).status_code == 202
            tools = json.loads(await asyncio.wait_for(data(), 10))["result"]["tools"]
            assert {tool["name"] for tool in tools} == {"echo"}

            # The default server's message endpoint knows no such stream (same user, own token).
            query = endpoint.partition("?")[2]
            elsewhere = await http.post(
                base + "/messages?" + query, json=listing, headers=default_auth
            )
            assert elsewhere.status_code == 404
            # The echo server refuses the default server's token (S82), and the other way round.
            refused = await http.post(base + endpoint, json=listing, headers=default_auth)
            assert refused.status_code == 401
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            other = await http.get(base + "/sse", headers=echo_auth)
            assert other.status_code == 401
