"""The MCP conformance suite against ``charter serve`` with tokens from the real OAuth flow.

- 0.1.16 ``server --suite active`` (30 scenarios) against ``charter serve --tools
  tests.conformance.tools``; ``tests/conformance/preload.mjs`` adds the bearer token.
- 0.2.0-alpha ``authorization``: AS metadata and a whole authorization-code grant; this test
  plays the user on the authorize URL the suite prints, and lets the redirect reach the suite's
  callback listener.

Both need Node 22 and the suites installed by ``.ci/install-node22.sh`` (0.1.16) and
``.ci/install-node22-clients.sh`` (0.2.0-alpha, under ``$CHARTER_CONFORMANCE_DIR/alpha``).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.test_conformance_suite import (
    ACTIVE_SCENARIOS,
    NODE,
    PACKAGE,
    assert_fixture_names,
    install_dir,
    run_active_suite,
)
from tests.support.charter_process import CharterProcess, run_charter
from tests.support.headless import HeadlessUser
from tests.support.live import free_port
from tests.support.oauth_flow import obtain_tokens, register_public_client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALPHA = "alpha"
SUITE_TIMEOUT = 600


def alpha_package(install: Path) -> Path:
    package = install / ALPHA / PACKAGE
    if not package.is_file():
        pytest.skip(
            f"no conformance 0.2.0-alpha under {install / ALPHA}: run .ci/install-node22-clients.sh"
        )
    return package


def checks(output: Path) -> tuple[int, list[str], list[str], set[str]]:
    """(scenarios, failures, warnings, passed check ids) from ``checks.json`` under ``output``."""
    scenarios, failures, warnings, passed = 0, [], [], set()
    for checks_file in sorted(output.rglob("checks.json")):
        scenarios += 1
        for check in json.loads(checks_file.read_text()):
            line = f"{checks_file.parent.name}: {check['id']}: {check.get('errorMessage', '')}"
            if check["status"] == "SUCCESS":
                passed.add(check["id"])
            elif check["status"] == "FAILURE":
                failures.append(line)
            elif check["status"] == "WARNING":
                warnings.append(line)
    return scenarios, failures, warnings, passed


async def rpc(
    http: httpx.AsyncClient, url: str, token: str, session: str | None, method: str
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    if session:
        headers["Mcp-Session-Id"] = session
    params: dict[str, Any] = {}
    if method == "initialize":
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    response = await http.post(url, json=body, headers=headers)
    response.raise_for_status()
    return response


async def assert_fixture_served(charter: CharterProcess, token: str) -> None:
    """The pitfall in REAL-CLIENTS.md: some scenarios pass falsely when a tool is missing."""
    async with httpx.AsyncClient(timeout=30) as http:
        init = await rpc(http, charter.mcp_url, token, None, "initialize")
        session = init.headers["mcp-session-id"]
        tools = (await rpc(http, charter.mcp_url, token, session, "tools/list")).json()
        prompts = (await rpc(http, charter.mcp_url, token, session, "prompts/list")).json()
        resources = (await rpc(http, charter.mcp_url, token, session, "resources/list")).json()
    assert_fixture_names(
        tools["result"]["tools"], prompts["result"]["prompts"], resources["result"]["resources"]
    )


async def test_conformance_active_suite_through_oauth(tmp_path: Path) -> None:
    install = install_dir()
    with run_charter(tmp_path / "data", "--tools", "tests.conformance.tools") as charter:
        tokens = await obtain_tokens(charter, "mcp notes:read notes:write")
        await assert_fixture_served(charter, tokens.access_token)
        run, output = await asyncio.to_thread(
            run_active_suite,
            install,
            charter.mcp_url,
            tokens.access_token,
            tmp_path,
            timeout=SUITE_TIMEOUT,
        )
        server_log = charter.stderr
    scenarios, failures, warnings, _passed = checks(output)
    detail = run.stdout[-3000:] + run.stderr[-2000:]
    assert scenarios == ACTIVE_SCENARIOS, f"ran {scenarios} scenarios\n{detail}"
    assert not failures, "conformance failures:\n" + "\n".join(failures)
    for warning in warnings:
        print("WARNING", warning)
    assert run.returncode == 0, detail
    assert tokens.access_token not in server_log


_AUTHORIZE_URL = re.compile(r"(http://127\.0\.0\.1:\d+/authorize\?\S+)")


async def test_conformance_authorization_scenarios(tmp_path: Path) -> None:
    install = install_dir()
    package = alpha_package(install)
    port = free_port()
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    with run_charter(tmp_path / "data") as charter:
        assert charter.admin_password is not None
        async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
            client_id = await register_public_client(http, redirect_uri, "Conformance suite")
        output = tmp_path / "results"
        command = [
            str(install / NODE),
            str(package),
            "authorization",
            "--url",
            charter.base_url,
            "--client-id",
            client_id,
            "--resource",
            charter.mcp_url,
            "-p",
            str(port),
            "-o",
            str(output),
        ]
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if _AUTHORIZE_URL.search(line):
                    found.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        user = HeadlessUser("admin", charter.admin_password)
        try:
            assert await asyncio.to_thread(found.wait, 120), "".join(lines)
            match = next(m for m in map(_AUTHORIZE_URL.search, lines) if m)
            redirect = await user.authorize(match.group(1))
            assert str(redirect).startswith(redirect_uri), redirect
            # Deliver the redirect to the suite's callback listener, as a browser would.
            async with httpx.AsyncClient(timeout=30) as browser:
                await browser.get(str(redirect))
            returncode = await asyncio.to_thread(process.wait, SUITE_TIMEOUT)
        finally:
            await user.aclose()
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            reader.join(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
    transcript = "".join(lines)
    scenarios, failures, warnings, passed = checks(output)
    assert scenarios == 2, transcript
    assert {"authorization-server-metadata", "authorization-code-grant"} <= passed, transcript
    assert not failures, "authorization conformance failures:\n" + "\n".join(failures)
    for warning in warnings:
        print("WARNING", warning)
    assert returncode == 0, transcript
