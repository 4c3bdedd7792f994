"""``charter audit list --json`` after a scripted OAuth flow against ``charter serve --workers 2``
on PostgreSQL: each security event of the flow once, with the client's address and the request
id that the access log shows; no token, code or password in any field (S92).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.charter_process import CharterProcess, charter_env, run_charter
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database
from tests.support.oauth_flow import Tokens, obtain_tokens

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if postgres_base_url() is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        yield url


def audit(charter: CharterProcess, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [*charter.admin_command, "audit", "list", "--json", *args],
        capture_output=True,
        text=True,
        env=charter_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events: list[dict[str, object]] = json.loads(done.stdout)
    return events


async def scripted_flow(charter: CharterProcess) -> Tokens:
    """Register, sign in, consent, redeem, refresh, revoke."""
    tokens = await obtain_tokens(charter)
    assert tokens.refresh_token is not None
    async with httpx.AsyncClient(base_url=charter.base_url, timeout=30) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": tokens.client_id,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        revoked = await http.post(
            "/revoke",
            data={"token": refreshed.json()["refresh_token"], "client_id": tokens.client_id},
        )
        assert revoked.status_code == 200, revoked.text
    return tokens


async def test_s92_audit_list_shows_the_flow_once_with_ip_and_request_id(
    tmp_path: Path, postgres_url: str
) -> None:
    args = ("--workers", "2", "--database-url", postgres_url)
    with run_charter(tmp_path / "data", *args) as charter:
        password = charter.admin_password
        assert password is not None
        tokens = await scripted_flow(charter)
        events = audit(charter, "--client", tokens.client_id)
        log = charter.stderr
    # Each event once, although two workers served the flow.
    assert [event["event"] for event in events] == [
        "client_registered",
        "login_succeeded",
        "consent_granted",
        "code_issued",
        "grant_created",
        "grant_revoked",
    ]
    for event in events:
        assert event["ip"] == "127.0.0.1", event
        request_id = event["request_id"]
        assert isinstance(request_id, str) and request_id, event
        assert f"[{request_id}] charter.access" in log, event
    everything = json.dumps(events)
    secrets = [tokens.access_token, tokens.code, password]
    assert tokens.refresh_token is not None
    secrets.append(tokens.refresh_token)
    for secret in secrets:
        assert secret not in everything
