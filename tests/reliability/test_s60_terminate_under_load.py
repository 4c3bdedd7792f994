"""S60 under load: every PostgreSQL connection of the server is terminated
(``pg_terminate_backend``) while :data:`CLIENTS` clients keep writing; at most one request
fails per connection terminated, never with a 500, and the server goes on serving without a
restart.

Each client makes a bounded number of token requests (each writes a grant and an access token
row); the terminations come :data:`TERMINATIONS` times while they run. Only this test's scratch
database's backends are terminated, never the PostgreSQL server.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from authserver.endpoints.app import create_app
from tests.reliability.test_s60_connection_loss import terminate_backends
from tests.support.factories import create_client
from tests.support.live import serve_app
from tests.support.reliability import client_credentials_form, ready_worker

pytestmark = pytest.mark.postgres

CLIENTS = 8
REQUESTS_PER_CLIENT = 40
TERMINATIONS = 3
#: Requests every client makes after the last termination, all of which must succeed.
AFTER = 5


def test_s60_terminating_every_connection_under_load(postgres_url: str, tmp_path: Path) -> None:
    server = ready_worker(postgres_url, tmp_path / "data")
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    form = client_credentials_form(client.client_id, secret)
    statuses: Counter[int] = Counter()
    after: Counter[int] = Counter()
    lock = threading.Lock()
    progress = threading.Semaphore(0)
    last_kill_done = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(REQUESTS_PER_CLIENT):
                status = http.post(f"{url}/token", data=form).status_code
                with lock:
                    statuses[status] += 1
                progress.release()
            last_kill_done.wait(60)
            for _ in range(AFTER):
                status = http.post(f"{url}/token", data=form).status_code
                with lock:
                    after[status] += 1

    killed = 0
    try:
        with serve_app(create_app(server)) as url, ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(load, url) for _ in range(CLIENTS)]
            for _ in range(TERMINATIONS):
                for _ in range(CLIENTS * REQUESTS_PER_CLIENT // (TERMINATIONS + 1)):
                    assert progress.acquire(timeout=60)
                killed += terminate_backends(postgres_url)
            last_kill_done.set()
            for future in futures:
                future.result(timeout=120)
    finally:
        server.database.dispose()
    failed = sum(count for status, count in statuses.items() if status != 200)
    assert killed >= TERMINATIONS, killed
    assert set(statuses) <= {200, 503}, statuses  # a lost connection is 503, never 500
    assert failed <= killed, (failed, killed, statuses)
    assert after == {200: CLIENTS * AFTER}, after
