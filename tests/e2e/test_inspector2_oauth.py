"""MCP Inspector 2.x CLI running the whole OAuth flow itself against ``charter serve``.

The Inspector discovers, registers (DCR), prints the authorize URL ("Please navigate to: …") and
waits on its callback listener (``MCP_OAUTH_CALLBACK_URL``, moved to a free port). The test plays
the user: logs in, approves, and delivers the redirect to that listener (REAL-CLIENTS.md §3).
Needs Node ≥ 22.19 and the Inspector installed by ``.ci/install-node22-clients.sh``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.charter_process import CharterProcess, run_charter
from tests.e2e.headless import HeadlessUser
from tests.support.live import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE = "node_modules/node/bin/node"
LAUNCHER = "inspector2/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
_NAVIGATE = re.compile(r"Please navigate to: (\S+)")
TIMEOUT = 120.0


def installed() -> tuple[Path, Path]:
    value = os.environ.get("CHARTER_CONFORMANCE_DIR")
    if not value:
        pytest.skip("CHARTER_CONFORMANCE_DIR is unset: run .ci/install-node22.sh and export it")
    base = Path(value)
    if not (base / NODE).is_file() or not (base / LAUNCHER).is_file():
        pytest.skip(f"no Node 22 + Inspector 2.x under {base}: run .ci/install-node22-clients.sh")
    return base / NODE, base / LAUNCHER


async def run_inspector(
    charter: CharterProcess, user: HeadlessUser, home: Path, *args: str
) -> tuple[Any, str]:
    """Run one Inspector CLI command, completing its OAuth flow; its JSON output and stderr."""
    node, launcher = installed()
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("MCP_")},
        "HOME": str(home),
        "MCP_CATALOG_PATH": str(home / "mcp.json"),
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "MCP_AUTO_OPEN_ENABLED": "true",
        "MCP_OAUTH_CALLBACK_URL": callback,
        "BROWSER": "/bin/true",  # the "browser" is this test, which reads the printed URL
        "NO_COLOR": "1",
    }
    command = [str(node), str(launcher), "--cli", charter.mcp_url, *args]
    process = subprocess.Popen(
        command,
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    errors: list[str] = []
    navigate = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        output.extend(process.stdout)

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            errors.append(line)
            if _NAVIGATE.search(line):
                navigate.set()

    readers = [threading.Thread(target=read, daemon=True) for read in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    try:
        exited = asyncio.create_task(asyncio.to_thread(process.wait, TIMEOUT))
        while not navigate.is_set() and not exited.done():
            await asyncio.sleep(0.05)
        if navigate.is_set():
            url = next(m for m in map(_NAVIGATE.search, errors) if m).group(1)
            redirect = await user.authorize(url)
            assert str(redirect).startswith(callback), redirect
            async with httpx.AsyncClient(timeout=30) as browser:
                await browser.get(str(redirect))
        await exited
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    stdout = "".join(output)
    stderr = "".join(errors)
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    return json.loads(stdout[stdout.index("{") :]), stderr


async def test_inspector2_runs_the_oauth_flow_and_calls_tools(tmp_path: Path) -> None:
    installed()
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None
        user = HeadlessUser("admin", charter.admin_password)
        try:
            listed, stderr = await run_inspector(
                charter, user, tmp_path / "inspector", "--method", "tools/list"
            )
            assert "Please navigate to:" in stderr
            names = {tool["name"] for tool in listed["tools"]}
            assert {"whoami", "notes_add", "notes_list"} <= names
            assert len(user.consent_pages) == 1
            assert user.login_pages == 1

            # A new process (memory secret store) registers and authorizes again: identical
            # registration metadata gives back the same client (idempotent DCR), so the
            # remembered consent and the login session make it a plain redirect.
            called, _ = await run_inspector(
                charter,
                user,
                tmp_path / "inspector",
                "--method",
                "tools/call",
                "--tool-name",
                "whoami",
            )
            identity = called["structuredContent"]
            assert identity["client_id"].startswith("dcr_")
            assert "mcp" in identity["scopes"]
            assert len(user.authorize_urls) == 2
            first, second = (httpx.URL(url).params["client_id"] for url in user.authorize_urls)
            assert first == second == identity["client_id"]
            assert len(user.consent_pages) == 1
            assert user.login_pages == 1
        finally:
            await user.aclose()
