"""S82: two MCP servers behind one authorization server (the README's ``servers.toml`` and
``echo_tools.py`` served by ``charter serve``). The SDK client signs in to the default server;
its token is refused by the echo server (401 ``invalid_token``: another audience), also after
the default server has verified and cached it; then the SDK authorises the echo server, whose
consent page names it, and calls its tool. The conformance suite 0.1.16 ``server --suite
active`` passes against each server of one deployment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conformance.test_conformance_suite import ACTIVE_SCENARIOS, install_dir, run_active_suite
from tests.e2e.test_conformance_oauth import assert_fixture_served, checks
from tests.support.charter_process import CharterProcess, run_charter
from tests.support.headless import HeadlessUser
from tests.support.oauth_flow import obtain_tokens
from tests.support.sdk_client import MemoryStorage, Observed, connect, make_provider, structured

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    return README.read_text(encoding="utf-8").split(marker + "\n", 1)[1].split("```", 1)[0]


@dataclass
class Server:
    """One MCP server of a running deployment, shaped like ``CharterProcess`` for the helpers."""

    charter: CharterProcess
    path: str

    @property
    def base_url(self) -> str:
        return self.charter.base_url

    @property
    def mcp_url(self) -> str:
        return self.charter.base_url + self.path

    @property
    def admin_password(self) -> str | None:
        return self.charter.admin_password


def rpc_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
}


async def test_s82_a_token_for_one_server_is_refused_by_the_other(tmp_path: Path) -> None:
    (tmp_path / "servers.toml").write_text(readme_block("# servers.toml"), encoding="utf-8")
    (tmp_path / "echo_tools.py").write_text(readme_block("# echo_tools.py"), encoding="utf-8")
    args = ("--mcp-servers-file", "servers.toml")
    with run_charter(tmp_path / "data", *args, cwd=tmp_path) as charter:
        assert f"{charter.base_url}/echo/mcp (Echo tools)" in charter.stdout
        assert charter.admin_password is not None
        default, echo = Server(charter, "/mcp"), Server(charter, "/echo/mcp")
        prm = httpx.get(charter.base_url + "/.well-known/oauth-protected-resource/echo/mcp")
        assert prm.json()["resource"] == echo.mcp_url
        assert prm.json()["scopes_supported"] == ["mcp", "echo:write"]
        assert prm.json()["resource_name"] == "Echo tools"
        root_prm = httpx.get(charter.base_url + "/.well-known/oauth-protected-resource")
        assert root_prm.json()["resource"] == default.mcp_url

        user = HeadlessUser("admin", charter.admin_password)
        storage = MemoryStorage()
        try:
            observed = Observed()
            provider = make_provider(default, user, storage)  # type: ignore[arg-type]
            async with connect(default, provider, observed) as client:  # type: ignore[arg-type]
                assert structured(await client.call_tool("whoami", {}))["scopes"] == ["mcp"]
            assert user.consent_pages[0].shows("Charter MCP server")
            assert storage.tokens is not None
            token = storage.tokens.access_token
            # Verified (and cached) by the default server, refused by the echo server.
            accepted = httpx.post(default.mcp_url, json=INITIALIZE, headers=rpc_headers(token))
            assert accepted.status_code == 200
            refused = httpx.post(echo.mcp_url, json=INITIALIZE, headers=rpc_headers(token))
            assert refused.status_code == 401
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            assert (
                "/.well-known/oauth-protected-resource/echo/mcp"
                in refused.headers["www-authenticate"]
            )

            # The SDK, holding the default server's token, is refused by the echo server and
            # authorises it in turn.
            observed = Observed()
            provider = make_provider(echo, user, storage)  # type: ignore[arg-type]
            async with connect(echo, provider, observed) as client:  # type: ignore[arg-type]
                echoed = await client.call_tool("echo", {"text": "hi"})
                assert echoed.content[0].text == "hi"  # type: ignore[union-attr]
                assert {tool.name for tool in (await client.list_tools()).tools} == {"echo"}
            assert 401 in observed.statuses("/echo/mcp")
            assert len(user.consent_pages) == 2
            assert user.consent_pages[1].shows("Echo tools")
            assert storage.tokens.access_token != token
            # And the echo server's token is refused by the default server.
            echo_token = storage.tokens.access_token
            back = httpx.post(default.mcp_url, json=INITIALIZE, headers=rpc_headers(echo_token))
            assert back.status_code == 401
        finally:
            await user.aclose()


@pytest.mark.slow
async def test_conformance_active_suite_against_each_server(tmp_path: Path) -> None:
    install = install_dir()
    (tmp_path / "servers.toml").write_text(
        '[[server]]\nname = "Conformance two"\npath = "/two/mcp"\n'
        'tools = ["tests.conformance.tools"]\nbuiltin = true\n',
        encoding="utf-8",
    )
    args = (
        "--tools",
        "tests.conformance.tools",
        "--mcp-servers-file",
        str(tmp_path / "servers.toml"),
    )
    with run_charter(tmp_path / "data", *args) as charter:
        for path in ("/mcp", "/two/mcp"):
            server = Server(charter, path)
            tokens = await obtain_tokens(server, "mcp notes:read notes:write")  # type: ignore[arg-type]
            await assert_fixture_served(server, tokens.access_token)  # type: ignore[arg-type]
            workdir = tmp_path / path.strip("/").replace("/", "-")
            workdir.mkdir()
            run, output = await asyncio.to_thread(
                run_active_suite, install, server.mcp_url, tokens.access_token, workdir, 600
            )
            scenarios, failures, _warnings, _passed = checks(output)
            detail = run.stdout[-3000:] + run.stderr[-2000:]
            assert scenarios == ACTIVE_SCENARIOS, f"{path}: ran {scenarios}\n{detail}"
            assert not failures, f"{path}: conformance failures:\n" + "\n".join(failures)
            assert run.returncode == 0, detail
