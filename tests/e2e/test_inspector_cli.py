"""The MCP Inspector CLI (npm ``@modelcontextprotocol/inspector-cli@1.0.3``) on ``charter serve``.

The token comes from Charter's real OAuth flow; the Inspector sends it as a header
(REAL-CLIENTS.md §3).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.oauth_flow import obtain_tokens

pytestmark = pytest.mark.e2e

INSPECTOR = "@modelcontextprotocol/inspector-cli@1.0.3"
#: The first run downloads the package.
TIMEOUT = 300

if shutil.which("npx") is None:
    pytest.skip(
        "npx (Node.js) is not installed: cannot run the MCP Inspector CLI", allow_module_level=True
    )


def inspector(
    charter: CharterProcess, token: str | None, *args: str, sse: bool = False
) -> subprocess.CompletedProcess[str]:
    """The Inspector CLI on the MCP URL (``--transport http``), or with ``sse`` on the
    2024-11-05 HTTP+SSE endpoint (``--transport sse``)."""
    url, transport = (charter.base_url + "/sse", "sse") if sse else (charter.mcp_url, "http")
    command = ["npx", "-y", INSPECTOR, "--cli", url, "--transport", transport]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    command += list(args)
    # inspector-cli 1.0.3 checks for "../package.json" relative to the working directory but
    # imports it relative to its own module: give it a working directory whose parent has one.
    workdir = charter.data_dir.parent / "inspector" / "cwd"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir.parent / "package.json").write_text("{}")
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=workdir
    )


def output_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    start = result.stdout.index("{")
    return json.loads(result.stdout[start:])


async def test_inspector_lists_and_calls_tools_with_an_oauth_token(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data") as charter:
        tokens = await obtain_tokens(charter, "mcp notes:read notes:write")

        listed = await asyncio.to_thread(
            inspector, charter, tokens.access_token, "--method", "tools/list"
        )
        names = {tool["name"] for tool in output_json(listed)["tools"]}
        assert {"whoami", "notes_add", "notes_list", "notes_read", "notes_delete"} <= names

        added = await asyncio.to_thread(
            inspector,
            charter,
            tokens.access_token,
            "--method",
            "tools/call",
            "--tool-name",
            "notes_add",
            "--tool-arg",
            "title=from the inspector",
            "body=hello",
        )
        result = output_json(added)
        assert not result.get("isError"), result
        assert result["structuredContent"]["title"] == "from the inspector"

        whoami = await asyncio.to_thread(
            inspector,
            charter,
            tokens.access_token,
            "--method",
            "tools/call",
            "--tool-name",
            "whoami",
        )
        identity = output_json(whoami)["structuredContent"]
        assert identity["client_id"] == tokens.client_id
        assert identity["scopes"] == ["mcp", "notes:read", "notes:write"]


async def test_inspector_without_token_is_refused(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data") as charter:
        refused = await asyncio.to_thread(inspector, charter, None, "--method", "tools/list")
        assert refused.returncode != 0
        assert "this endpoint needs a bearer access token" in refused.stderr


async def test_inspector_sse_transport_lists_and_calls_tools(tmp_path: Path) -> None:
    """``--transport sse``: the Inspector opens ``/sse`` and posts to the endpoint it names."""
    with run_charter(tmp_path / "data") as charter:
        tokens = await obtain_tokens(charter, "mcp notes:read")
        listed = await asyncio.to_thread(
            inspector, charter, tokens.access_token, "--method", "tools/list", sse=True
        )
        names = {tool["name"] for tool in output_json(listed)["tools"]}
        assert {"whoami", "notes_list", "notes_read"} <= names
        assert "notes_add" not in names  # notes:write was not granted
        whoami = await asyncio.to_thread(
            inspector,
            charter,
            tokens.access_token,
            "--method",
            "tools/call",
            "--tool-name",
            "whoami",
            sse=True,
        )
        identity = output_json(whoami)["structuredContent"]
        assert identity["client_id"] == tokens.client_id
        assert identity["scopes"] == ["mcp", "notes:read"]
        refused = await asyncio.to_thread(
            inspector, charter, None, "--method", "tools/list", sse=True
        )
        assert refused.returncode != 0
        assert "(401)" in refused.stderr
