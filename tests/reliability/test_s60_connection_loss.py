"""S60: PostgreSQL connections killed under the app (``pg_terminate_backend``) → the next
requests recover with at most one failed request (the engine pre-pings pooled connections).

The PostgreSQL server itself is never restarted: only this test's scratch database's backends
are terminated.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from authserver.endpoints.app import create_app
from tests.support.factories import create_client
from tests.support.live import serve_app
from tests.support.reliability import client_credentials_form, ready_worker, token_request

pytestmark = pytest.mark.postgres

REQUESTS_AFTER = 12
PARALLEL_WARMUP = 6
_OTHERS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def terminate_backends(database_url: str, *, wait_gone: bool = False) -> int:
    """Terminate every other connection to the database of ``database_url``; how many.

    With ``wait_gone``, return only once the terminated backends have exited (bounded wait).
    """
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(f"SELECT count(pg_terminate_backend(pid)) {_OTHERS}")
            ).scalar_one()
            deadline = time.monotonic() + 30
            while wait_gone and time.monotonic() < deadline:
                if conn.execute(text(f"SELECT count(*) {_OTHERS}")).scalar_one() == 0:
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()
    return int(killed)


def warm_pool(url: str, form: dict[str, str]) -> None:
    """Several requests at once, so that the pool holds several live connections."""
    with ThreadPoolExecutor(PARALLEL_WARMUP) as pool:
        statuses = list(
            pool.map(
                lambda _: httpx.post(f"{url}/token", data=form, timeout=30).status_code,
                range(PARALLEL_WARMUP * 2),
            )
        )
    assert statuses == [200] * len(statuses)


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
            warm_pool(url, form)
            # Right after the kill (a backend may still be exiting): at most one failure.
            assert terminate_backends(postgres_url) >= 1
            racing = [token_request(http, url, form).status_code for _ in range(REQUESTS_AFTER)]
            # Once the killed backends are gone, the pre-ping replaces every dead pooled
            # connection before use: no request fails at all.
            warm_pool(url, form)
            assert terminate_backends(postgres_url, wait_gone=True) >= 1
            settled = [token_request(http, url, form).status_code for _ in range(REQUESTS_AFTER)]
    finally:
        server.database.dispose()
    assert sum(status != 200 for status in racing) <= 1, racing
    assert all(status in (200, 503) for status in racing), racing
    assert racing[-1] == 200
    assert settled == [200] * REQUESTS_AFTER
