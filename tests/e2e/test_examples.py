"""The embedding examples (``examples/``) on a real socket: the official MCP Python SDK client
does the whole OAuth flow against Charter mounted in a Starlette and in a FastAPI application
and calls a tool, while the host's own routes, middleware and lifespan keep working; and the
host-authentication example filters tools by the scopes of the host's own backend (S84)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.charter_process import charter_env
from tests.support.headless import HeadlessUser
from tests.support.live import free_port
from tests.support.sdk_client import MemoryStorage, Observed, connect, make_provider, structured

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHARTER = str(Path(sys.executable).with_name("charter"))
PASSWORD = "correct-horse-battery"


@dataclass
class Hosted:
    """A running example application."""

    base_url: str
    log: Path

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"


@contextmanager
def run_example(module: str, tmp_path: Path, port: int, **env: str) -> Iterator[Hosted]:
    """``uvicorn examples.MODULE:app`` on ``port`` with ``env`` (and the issuer at its origin)."""
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / f"{module}.log"
    command = [sys.executable, "-m", "uvicorn", f"examples.{module}:app", "--port", str(port)]
    values = charter_env(CHARTER_ISSUER=base, **env)
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=values, stdout=stderr, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Hosted(base, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def add_user(data_dir: Path, name: str) -> None:
    made = subprocess.run(
        [CHARTER, "--data-dir", str(data_dir), "users", "add", name, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=charter_env(),
        check=False,
    )
    assert made.returncode == 0, made.stderr


@pytest.mark.parametrize("module", ["starlette_app", "fastapi_app"])
async def test_sdk_oauth_against_charter_embedded_in_a_host_app(
    tmp_path: Path, module: str
) -> None:
    data = tmp_path / "data"
    add_user(data, "alice")
    with run_example(module, tmp_path, free_port(), CHARTER_DATA_DIR=str(data)) as host:
        # The host's routes, middleware and lifespan.
        home = httpx.get(host.base_url + "/")
        assert home.status_code == 200 and "the host application" in home.text
        assert home.headers["x-served-by"] == "host-app"
        assert httpx.get(host.base_url + "/health").json() == {"ok": True, "started": True}
        # Charter's metadata at the host's origin.
        prm = httpx.get(host.base_url + "/.well-known/oauth-protected-resource/mcp").json()
        assert prm["resource"] == host.mcp_url
        assert prm["authorization_servers"] == [host.base_url]

        user = HeadlessUser("alice", PASSWORD)
        storage = MemoryStorage()
        observed = Observed()
        try:
            async with connect(host, make_provider(host, user, storage), observed) as client:  # type: ignore[arg-type]
                me = structured(await client.call_tool("whoami", {}))
                assert me["scopes"] == ["mcp"]
                assert {tool.name for tool in (await client.list_tools()).tools} == {"whoami"}
        finally:
            await user.aclose()
        assert observed.statuses("/mcp")[0] == 401
        assert len(user.authorize_urls) == 1
        unauthenticated = httpx.post(host.mcp_url, json={})
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["x-served-by"] == "host-app"


async def list_tools_as(host: Hosted, api_key: str) -> set[str]:
    async with httpx2.AsyncClient(headers={"X-API-Key": api_key}, timeout=30) as http:
        async with Client(streamable_http_client(host.mcp_url, http_client=http)) as client:
            return {tool.name for tool in (await client.list_tools()).tools}


async def test_s84_host_authentication_drives_identity_and_tool_scopes(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"EXAMPLE_DATABASE": str(tmp_path / "host.db"), "EXAMPLE_MCP_URL": base + "/mcp"}
    with run_example("host_auth_app", tmp_path, port, **env) as host:
        assert httpx.get(base + "/", headers={"X-API-Key": "reader-key"}).text == "hello alice"
        assert await list_tools_as(host, "reader-key") == {"whoami"}
        assert {"whoami", "notes_add", "notes_list"} <= await list_tools_as(host, "writer-key")
        async with httpx2.AsyncClient(headers={"X-API-Key": "writer-key"}, timeout=30) as http:
            async with Client(streamable_http_client(host.mcp_url, http_client=http)) as client:
                me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "bob"
        assert set(me["scopes"]) == {"mcp", "notes:read", "notes:write"}
        # A bearer token is not Charter's business here: without the host's identity, 401.
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
        }
        forged = httpx.post(
            host.mcp_url, json=body, headers={**headers, "Authorization": "Bearer abc.def.ghi"}
        )
        assert forged.status_code == 401
        # Per-tool scopes: the reader's backend scopes lack notes:write.
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "notes_add",
                "arguments": {"title": "t"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
        routing = {"Mcp-Method": "tools/call", "Mcp-Name": "notes_add", "X-API-Key": "reader-key"}
        refused = httpx.post(host.mcp_url, json=call, headers={**headers, **routing})
        assert refused.status_code == 403
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
