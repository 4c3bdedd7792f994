"""MCP conformance 0.1.16 ``server --suite active`` against ``charter serve
--authorization-server`` with an access token that node-oidc-provider issued for Charter's MCP
URL (authorization code + PKCE + resource indicator, the provider's own login and consent
pages): the protected MCP server behind an external authorization server passes the suite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conformance.test_conformance_suite import ACTIVE_SCENARIOS, install_dir, run_active_suite
from tests.e2e.test_conformance_oauth import SUITE_TIMEOUT, assert_fixture_served, checks
from tests.e2e.test_external_authorization_server import SCOPES, external_deployment
from tests.support.oidc_provider import authorization_code_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_conformance_active_suite_with_a_node_oidc_provider_token(tmp_path: Path) -> None:
    install = install_dir()
    with external_deployment(tmp_path, "jwt", "--tools", "tests.conformance.tools") as (
        provider,
        charter,
    ):
        tokens = await authorization_code_token(provider, charter.mcp_url, SCOPES)
        token = tokens["access_token"]
        await assert_fixture_served(charter, token)
        run, output = await asyncio.to_thread(
            run_active_suite, install, charter.mcp_url, token, tmp_path, timeout=SUITE_TIMEOUT
        )
        server_log = charter.stderr
    scenarios, failures, _warnings, _passed = checks(output)
    detail = run.stdout[-3000:] + run.stderr[-2000:]
    assert token.count(".") == 2  # a JWT access token, checked with the provider's JWKS
    assert scenarios == ACTIVE_SCENARIOS, f"ran {scenarios} scenarios\n{detail}"
    assert not failures, "conformance failures:\n" + "\n".join(failures)
    assert run.returncode == 0, detail
    assert token not in server_log
