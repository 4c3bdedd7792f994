"""S60: PostgreSQL connections killed under the app (``pg_terminate_backend``) → the next
requests recover with at most one failed request (the engine pre-pings pooled connections).

The PostgreSQL server itself is never restarted: only this test's scratch database's backends
are terminated.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from authserver.app import create_app
from tests.reliability.support import client_credentials_form, ready_worker, token_request
from tests.support.factories import create_client
from tests.support.live import serve_app

pytestmark = pytest.mark.postgres

REQUESTS_AFTER = 12


def terminate_backends(database_url: str) -> int:
    """Terminate every other connection to the database of ``database_url``; how many."""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


def test_s60_terminated_connections_recover(postgres_url: str, tmp_path: Path) -> None:
    server = ready_worker(postgres_url, tmp_path / "data")
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    form = client_credentials_form(client.client_id, secret)
    try:
        with serve_app(create_app(server)) as url, httpx.Client(timeout=30) as http:
            for _ in range(3):  # fill the pool with live connections
                warm = token_request(http, url, form)
                assert warm.status_code == 200, warm.text
            rounds: list[list[int]] = []
            for _ in range(2):  # twice: recovery is not a one-off
                assert terminate_backends(postgres_url) >= 1
                rounds.append(
                    [token_request(http, url, form).status_code for _ in range(REQUESTS_AFTER)]
                )
    finally:
        server.database.dispose()
    for statuses in rounds:
        assert sum(status != 200 for status in statuses) <= 1, statuses
        assert all(status in (200, 503) for status in statuses), statuses
        assert statuses[-1] == 200
