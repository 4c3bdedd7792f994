"""``charter serve --workers 2`` on PostgreSQL: the official SDK client works across workers.

Consecutive requests of one MCP session, the OAuth flow's pages and the token endpoint land on
whichever worker accepts the connection; everything they share lives in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.charter_process import run_charter
from tests.support.database import POSTGRES_ENV, postgres_base_url, scratch_postgres_database
from tests.support.headless import HeadlessUser
from tests.support.sdk_client import MemoryStorage, Observed, connect, make_provider, structured

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if postgres_base_url() is None:
        pytest.skip(f"multi-worker serve needs PostgreSQL: set {POSTGRES_ENV}")
    with scratch_postgres_database() as url:
        yield url


async def test_two_workers_share_sessions_tokens_and_the_admin(
    tmp_path: Path, postgres_url: str
) -> None:
    args = ("--workers", "2", "--database-url", postgres_url)
    with run_charter(tmp_path / "data", *args) as charter:
        password = charter.admin_password
        assert password is not None
        assert "Database: postgresql+psycopg://" in charter.stdout
        user = HeadlessUser("admin", password)
        storage = MemoryStorage()
        provider = make_provider(charter, user, storage)
        try:
            async with connect(charter, provider, Observed()) as client:
                for index in range(6):
                    me = structured(await client.call_tool("whoami", {}))
                    assert me["scopes"] == ["mcp"], index
                added = structured(
                    await client.call_tool("notes_add", {"title": "shared", "body": "x"})
                )
                assert added["title"] == "shared"
        finally:
            await user.aclose()
        assert charter.stderr.count("Started server process") == 2
    # A restart of the workers keeps the one admin and prints no new password.
    with run_charter(tmp_path / "data", *args) as again:
        assert again.admin_password is None
