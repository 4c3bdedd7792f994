"""``charter stdio`` (MCP "Transports" §stdio, both eras): the official MCP Python SDK's
``stdio_client`` and the MCP Inspector CLI (``--transport stdio``) list and call tools through
it as the local principal or a Charter user, with the same validation errors and scope rules as
over HTTP; stdout carries only protocol messages (S86)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import ElicitResult

from tests.support.charter_process import charter_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHARTER = str(Path(sys.executable).with_name("charter"))
NODE = "node_modules/node/bin/node"
LAUNCHER = "inspector2/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"


def stdio_args(data_dir: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "stdio", "--tools", "tests.support.stdio_tools", *extra]


def params(data_dir: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=CHARTER, args=stdio_args(data_dir, *extra), env=charter_env(), cwd=ROOT
    )


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def answer_name(_context: Any, _params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada"})


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sdk_stdio_client_lists_and_calls_tools(tmp_path: Path, mode: str) -> None:
    async with Client(
        params(tmp_path / "data"),
        mode=mode,
        elicitation_callback=answer_name,  # type: ignore[arg-type]
    ) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"whoami", "notes_add", "noisy", "ask_name", "regional"} <= names
        me = (await client.call_tool("whoami", {})).structured_content
        assert me is not None
        assert me["subject"] == f"local:{os.environ.get('USER') or me['subject'][6:]}"
        assert me["client_id"] == "charter-stdio"
        assert set(me["scopes"]) == {"mcp", "notes:read", "notes:write"}
        # The same validation errors as over HTTP.
        invalid = await client.call_tool("noisy", {})
        assert invalid.is_error
        assert "text" in text_of(invalid)
        assert text_of(await client.call_tool("noisy", {"text": "hi"})) == "hi"
        assert text_of(await client.call_tool("ask_name", {})) == "Hello Ada"
        assert text_of(await client.call_tool("regional", {"region": "eu"})) == "served in eu"
        added = await client.call_tool("notes_add", {"title": "local", "body": "note"})
        assert not added.is_error, added.content


def run_stdio(data_dir: Path, lines: list[dict[str, Any]], *extra: str) -> tuple[str, str]:
    sent = "".join(json.dumps(line) + "\n" for line in lines) + "not json\n"
    result = subprocess.run(
        [CHARTER, *stdio_args(data_dir, *extra)],
        input=sent,
        capture_output=True,
        text=True,
        timeout=60,
        env=charter_env(),
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


def call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_s86_stdout_carries_only_protocol_messages(tmp_path: Path) -> None:
    stdout, stderr = run_stdio(
        tmp_path / "data",
        [*HANDSHAKE, call(2, "noisy", {"text": "secret-words"})],
        "--log-level",
        "debug",
    )
    messages = [json.loads(line) for line in stdout.splitlines()]
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    replies = {message.get("id"): message for message in messages}
    assert sorted(replies, key=str) == [1, 2, None]  # requests run concurrently
    assert replies[2]["result"]["content"][0]["text"] == "secret-words"
    assert replies[None]["error"]["code"] == -32700  # the line that was not JSON
    assert "printed secret-words" in stderr and "logged secret-words" in stderr


def test_stdio_scopes_and_user_are_configurable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = subprocess.run(
        [CHARTER, "--data-dir", str(data), "users", "add", "carol", "--password-stdin"],
        input="long-enough-password\n",
        capture_output=True,
        text=True,
        env=charter_env(),
        check=False,
    )
    assert made.returncode == 0, made.stderr
    stdout, _ = run_stdio(
        data,
        [*HANDSHAKE, call(2, "whoami", {}), call(3, "notes_add", {"title": "t"})],
        "--user",
        "carol",
        "--scope",
        "mcp",
    )
    replies = {m.get("id"): m for m in map(json.loads, stdout.splitlines())}
    me = replies[2]["result"]["structuredContent"]
    assert me["scopes"] == ["mcp"] and not me["subject"].startswith("local:")
    refused = replies[3]["error"]
    assert refused["data"]["status"] == 403
    assert refused["data"]["requiredScopes"] == ["mcp", "notes:write"]


def test_stdio_refuses_an_unknown_scope_or_user(tmp_path: Path) -> None:
    for extra, message in (("--scope", "nope"), ("--user", "nobody")):
        result = subprocess.run(
            [CHARTER, *stdio_args(tmp_path / "data", extra, message)],
            input="",
            capture_output=True,
            text=True,
            env=charter_env(),
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert result.stdout == ""
        assert message in result.stderr


def inspector() -> tuple[Path, Path]:
    value = os.environ.get("CHARTER_CONFORMANCE_DIR")
    if not value:
        pytest.skip("CHARTER_CONFORMANCE_DIR is unset: run .ci/install-node22.sh and export it")
    base = Path(value)
    if not (base / NODE).is_file() or not (base / LAUNCHER).is_file():
        pytest.skip(f"no Node 22 + Inspector 2.x under {base}: run .ci/install-node22-clients.sh")
    return base / NODE, base / LAUNCHER


def test_inspector_cli_lists_and_calls_tools_over_stdio(tmp_path: Path) -> None:
    node, launcher = inspector()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **charter_env(),
        "HOME": str(home),
        "MCP_CATALOG_PATH": str(home / "mcp.json"),
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "NO_COLOR": "1",
    }
    base = [str(node), str(launcher), "--cli", "--transport", "stdio", "--cwd", str(ROOT)]
    target = [CHARTER, *stdio_args(tmp_path / "data")]

    def run(*args: str) -> Any:
        result = subprocess.run(
            [*base, *args, *target],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return json.loads(result.stdout[result.stdout.index("{") :])

    listed = run("--method", "tools/list")
    assert {"whoami", "noisy"} <= {tool["name"] for tool in listed["tools"]}
    # --tool-arg takes several values: it comes before the other options and the command.
    called = run("--tool-arg", "text=hey", "--method", "tools/call", "--tool-name", "noisy")
    assert called["content"][0]["text"] == "hey"


CONFORMANCE_SUITES = {
    "0.1.16": "node_modules/@modelcontextprotocol/conformance/dist/index.js",
    "0.2.0-alpha": "alpha/node_modules/@modelcontextprotocol/conformance/dist/index.js",
}


@pytest.mark.parametrize("suite", sorted(CONFORMANCE_SUITES))
def test_conformance_server_scenarios_reach_a_server_by_url_only(suite: str) -> None:
    """The conformance suites installed by ``.ci/run`` have no stdio-capable server scenario:
    ``conformance server`` takes a ``--url`` and nothing that starts a command. Over STDIO,
    Charter is therefore checked by the SDK's ``stdio_client`` and the Inspector CLI above; this
    test fails when a suite learns to start a server command, so that it gets run here too."""
    value = os.environ.get("CHARTER_CONFORMANCE_DIR")
    if not value:
        pytest.skip("CHARTER_CONFORMANCE_DIR is unset: run .ci/install-node22.sh and export it")
    base = Path(value)
    script = base / CONFORMANCE_SUITES[suite]
    if not script.is_file():
        pytest.skip(f"conformance {suite} is not under {base}: run .ci/install-node22-clients.sh")
    result = subprocess.run(
        [str(base / NODE), str(script), "server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    options = {word for word in result.stdout.split() if word.startswith("--")}
    assert "--url" in options
    assert not options & {"--command", "--stdio", "--transport", "--server-command"}, options
