"""``/metrics`` of ``charter serve --workers 2`` on PostgreSQL: after a scripted OAuth flow and
tool calls the counters (summed over both workers by prometheus-client's multiprocess mode)
hold the right values; 1,000 dynamic registrations later the label sets are the same (S91)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.charter_process import CharterProcess, run_charter
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database
from tests.support.oauth_flow import obtain_tokens
from tests.support.reliability import open_mcp_session

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
REGISTRATIONS = 1000


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if postgres_base_url() is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        yield url


def scrape(charter: CharterProcess) -> tuple[str, Series]:
    response = httpx.get(charter.base_url + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    series: Series = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, series


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def call_tool(charter: CharterProcess, headers: dict[str, str], name: str, index: int) -> None:
    response = httpx.post(
        charter.mcp_url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": index,
            "method": "tools/call",
            "params": {"name": name, "arguments": {}},
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


async def test_s91_metrics_of_two_workers_count_the_flow_and_stay_bounded(
    tmp_path: Path, postgres_url: str
) -> None:
    args = (
        "--workers",
        "2",
        "--database-url",
        postgres_url,
        "--registration-rate-per-minute",
        "100000",
    )
    with run_charter(tmp_path / "data", *args) as charter:
        tokens = await obtain_tokens(charter)
        refreshed = httpx.post(
            charter.base_url + "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": tokens.client_id,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        headers = open_mcp_session(charter.mcp_url, tokens.access_token, "metrics e2e")
        for index in range(3):
            call_tool(charter, headers, "whoami", index + 1)
        call_tool(charter, headers, "no_such_tool_here", 9)

        text, series = scrape(charter)
        assert tokens.client_id not in text
        assert value(series, "charter_registrations_total") == 1
        assert value(series, "charter_failed_logins_total") == 0
        assert value(series, "charter_security_events_total", event="login_succeeded") == 1
        grants = "charter_token_grants_total"
        assert value(series, grants, grant_type="authorization_code", outcome="issued") == 1
        assert value(series, grants, grant_type="refresh_token", outcome="issued") == 1
        tools = "charter_tool_calls_total"
        assert value(series, tools, tool="whoami", outcome="ok") == 3
        assert value(series, tools, tool="unregistered", outcome="unknown_tool") == 1
        mcp = "charter_mcp_requests_total"
        assert value(series, mcp, method="tools/call", era="handshake") == 4
        assert value(series, mcp, method="initialize", era="handshake") == 1
        http = "charter_http_requests_total"
        assert value(series, http, route="/token", method="POST", status="200") == 2
        assert value(series, http, route="/register", method="POST", status="201") == 1
        lookups = "charter_token_cache_lookups_total"
        looked_up = value(series, lookups, result="hit") + value(series, lookups, result="miss")
        assert looked_up >= 5  # initialize, initialized, four calls: each verified the token
        assert value(series, lookups, result="miss") >= 1
        assert value(series, "charter_jwks_refreshes_total", outcome="ok") >= 1
        assert value(series, "charter_db_pool_size") > 0
        assert value(series, "charter_http_request_duration_seconds_count", route="/token") == 2

        _text, baseline = scrape(charter)  # now with the series of /metrics itself
        with httpx.Client(base_url=charter.base_url, timeout=30) as client:
            for index in range(REGISTRATIONS):
                registered = client.post(
                    "/register",
                    json={
                        "client_name": f"dynamic {index}",
                        "redirect_uris": [f"http://127.0.0.1:{1024 + index}/cb"],
                        "token_endpoint_auth_method": "none",
                    },
                )
                assert registered.status_code == 201, registered.text
        text_after, after = scrape(charter)
    assert value(after, "charter_registrations_total") == 1 + REGISTRATIONS
    assert value(after, http, route="/register", method="POST", status="201") == 1 + REGISTRATIONS
    assert "dcr_" not in text_after
    assert "dynamic 1" not in text_after
    # The same label sets: nothing per client, name or redirect URI.
    assert set(after) == set(baseline), sorted(set(after) ^ set(baseline))
