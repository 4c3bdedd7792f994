"""``charter serve --log-format json``: one JSON object per line, request ids, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import run_charter
from tests.support.oauth_flow import obtain_tokens

pytestmark = pytest.mark.e2e


async def test_s56_json_logs_have_request_ids_and_no_secrets(tmp_path: Path) -> None:
    with run_charter(tmp_path / "data", "--log-format", "json") as charter:
        password = charter.admin_password
        assert password is not None
        tokens = await obtain_tokens(charter, "mcp")
        async with httpx.AsyncClient(timeout=30) as http:
            accepted = await http.post(
                charter.mcp_url,
                headers={
                    "Authorization": f"Bearer {tokens.access_token}",
                    "Accept": "application/json, text/event-stream",
                    "X-Request-ID": "e2e-trace-1",
                },
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "log-test"},
                    },
                },
            )
            bogus = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZQ"
            refused = await http.get(charter.mcp_url, headers={"Authorization": f"Bearer {bogus}"})
            refresh = await http.post(
                charter.base_url + "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens.refresh_token or "",
                    "client_id": tokens.client_id,
                },
            )
        assert accepted.status_code == 200
        assert accepted.headers["x-request-id"] == "e2e-trace-1"
        assert refused.status_code == 401
        assert refresh.status_code == 200
        new_refresh = refresh.json()["refresh_token"]
        log = charter.stderr

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert entries, "nothing was logged"
    assert all(
        {"ts", "level", "logger", "message", "request_id"} <= entry.keys() for entry in entries
    )
    access = [entry for entry in entries if entry["logger"] == "charter.access"]
    traced = [entry for entry in access if entry["request_id"] == "e2e-trace-1"]
    assert [(entry["method"], entry["path"], entry["status"]) for entry in traced] == [
        ("POST", "/mcp", 200)
    ]
    assert all(entry["request_id"] for entry in access)
    assert {"/authorize", "/token", "/register"} <= {entry["path"] for entry in access}
    secrets = (password, tokens.code, tokens.access_token, tokens.refresh_token, new_refresh, bogus)
    for secret in secrets:
        assert secret and secret not in log
