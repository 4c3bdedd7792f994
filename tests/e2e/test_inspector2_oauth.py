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

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.headless import HeadlessUser
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


def inspector_env(home: Path, callback: str) -> dict[str, str]:
    """The Inspector's environment: its own home, secrets in memory, our callback listener."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("MCP_")},
        "HOME": str(home),
        "MCP_CATALOG_PATH": str(home / "mcp.json"),
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "MCP_AUTO_OPEN_ENABLED": "true",
        "MCP_OAUTH_CALLBACK_URL": callback,
        "BROWSER": "/bin/true",  # the "browser" is this test, which reads the printed URL
        "NO_COLOR": "1",
    }


class InspectorOutput:
    """Reads a running Inspector's stdout and stderr in threads; notices the authorize URL."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output: list[str] = []
        self.errors: list[str] = []
        self.navigate = threading.Event()
        self.readers = [
            threading.Thread(target=read, daemon=True)
            for read in (self._read_stdout, self._read_stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self.output.extend(self.process.stdout)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)
            if _NAVIGATE.search(line):
                self.navigate.set()

    def authorize_url(self) -> str:
        """The URL the Inspector asked the user to open."""
        return next(m for m in map(_NAVIGATE.search, self.errors) if m).group(1)

    def stop(self) -> None:
        """Kill the Inspector if still running; join the readers and close the pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


async def play_the_user(output: InspectorOutput, user: HeadlessUser, callback: str) -> None:
    """Wait for the authorize URL (or the Inspector's end); sign in and deliver the redirect."""
    exited = asyncio.create_task(asyncio.to_thread(output.process.wait, TIMEOUT))
    while not output.navigate.is_set() and not exited.done():
        await asyncio.sleep(0.05)
    if output.navigate.is_set():
        redirect = await user.authorize(output.authorize_url())
        assert str(redirect).startswith(callback), redirect
        async with httpx.AsyncClient(timeout=30) as browser:
            await browser.get(str(redirect))
    await exited


async def run_inspector(
    charter: CharterProcess, user: HeadlessUser, home: Path, *args: str
) -> tuple[Any, str]:
    """Run one Inspector CLI command, completing its OAuth flow; its JSON output and stderr."""
    node, launcher = installed()
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    home.mkdir(parents=True, exist_ok=True)
    command = [str(node), str(launcher), "--cli", charter.mcp_url, *args]
    process = subprocess.Popen(
        command,
        cwd=home,
        env=inspector_env(home, callback),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output = InspectorOutput(process)
    try:
        await play_the_user(output, user, callback)
    finally:
        output.stop()
    stdout = "".join(output.output)
    stderr = "".join(output.errors)
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
