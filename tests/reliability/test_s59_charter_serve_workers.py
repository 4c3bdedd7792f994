"""S59 end to end: ``charter serve --workers 2`` on PostgreSQL — two uvicorn worker processes
behind one port, any of which may serve any request: the JWKS is the same from every worker, a
code obtained through one redeems wherever the token request lands, and an MCP session opened
on one worker keeps working on the other (sessions live in SQL). On SIGTERM the supervisor stops
both workers and, their drain complete, exits 0.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.browser_flow import authorize_params, authorize_with_login, pkce_pair
from tests.support.charter_process import CharterProcess, run_charter
from tests.support.reliability import open_mcp_session

pytestmark = pytest.mark.postgres

REDIRECT_URI = "http://127.0.0.1/callback"
REPEATS = 8


async def obtain_token(charter: CharterProcess) -> str:
    """Register a public client, log in as the first admin, redeem the code."""
    password = charter.admin_password
    assert password is not None, charter.stdout
    async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as browser:
        registered = await browser.post(
            "/register",
            json={
                "redirect_uris": [REDIRECT_URI],
                "client_name": "s59",
                "token_endpoint_auth_method": "none",
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce_pair()
        params = authorize_params(
            client_id, REDIRECT_URI, challenge, scope="mcp", resource=charter.mcp_url
        )
        location = await authorize_with_login(browser, params, "admin", password)
        token = await browser.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": location.params["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
                "resource": charter.mcp_url,
            },
        )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])


async def test_s59_charter_serve_two_workers(postgres_url: str, tmp_path: Path) -> None:
    with run_charter(
        tmp_path / "data", "--workers", "2", "--database-url", postgres_url
    ) as charter:
        access_token = await obtain_token(charter)
        # A new connection per request, so the kernel may hand each one to either worker.
        jwks = {httpx.get(f"{charter.base_url}/jwks.json").text for _ in range(REPEATS)}
        headers = open_mcp_session(charter.mcp_url, access_token, "s59")
        calls = [
            httpx.post(
                charter.mcp_url,
                headers=headers,
                json={
                    "jsonrpc": "2.0",
                    "id": index + 1,
                    "method": "tools/call",
                    "params": {"name": "whoami", "arguments": {}},
                },
                timeout=30,
            )
            for index in range(REPEATS)
        ]
        exit_code = charter.stop()
    assert len(jwks) == 1
    assert [call.status_code for call in calls] == [200] * REPEATS, [c.text for c in calls]
    for call in calls:
        assert call.json()["result"]["structuredContent"]["subject"]
    workers = charter.stderr.count("Started server process")
    assert workers >= 2, charter.stderr
    assert exit_code == 0, charter.stderr
    assert charter.stderr.count("Application shutdown complete") == workers, charter.stderr
