"""S97: after a transient storage fault the server recovers by itself (SQLite).

The database file is made unwritable for a while with the immutable attribute (``chattr +i``:
the tests run as root, whom file modes do not stop), while the server opens new connections
(its pool is emptied first, as it is when connections are recycled or the pool grows). During
the window writes answer 503 ``temporarily_unavailable``; once the file is writable again the
server must serve every write again within :data:`RECOVERY_SECONDS`, with no restart. Before
the fix, connections that SQLite had silently opened read-only stayed in the pool and kept
answering 503 (no write succeeded in the 5 s after the window).

A database that cannot be written at start stops ``charter serve`` with a message saying so
(before the fix it started and answered 503 to every write).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from tests.support.charter_process import CHARTER, charter_env, run_charter
from tests.support.factories import create_client
from tests.support.live import free_port, serve_app
from tests.support.reliability import client_credentials_form, ready_worker

RECOVERY_SECONDS = 5.0
#: Requests in the window, and consecutive ones that must all succeed after it.
DURING = 10
AFTER = 30


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``path`` cannot be opened for writing, by root too, until the block ends."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def token_status(http: httpx.Client, base_url: str, form: dict[str, str]) -> int:
    """A client credentials request (it writes: a grant and an access token row)."""
    return http.post(f"{base_url}/token", data=form).status_code


def static_client(server: AuthServer) -> dict[str, str]:
    client, secret = create_client(
        server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
        scope="mcp",
    )
    assert secret is not None
    return client_credentials_form(client.client_id, secret)


def test_s97_sqlite_read_only_window_recovers_without_restart(tmp_path: Path) -> None:
    database = tmp_path / "charter.db"
    server = ready_worker(f"sqlite:///{database}", tmp_path / "data")
    form = static_client(server)
    try:
        with serve_app(create_app(server)) as base_url, httpx.Client(timeout=30) as http:
            assert token_status(http, base_url, form) == 200
            with immutable(database):
                server.database.engine.dispose()  # new connections open during the window
                during = Counter(token_status(http, base_url, form) for _ in range(DURING))
            writable_at = time.monotonic()
            recovered_after = None
            while time.monotonic() - writable_at < RECOVERY_SECONDS:
                if token_status(http, base_url, form) == 200:
                    recovered_after = time.monotonic() - writable_at
                    break
            after = Counter(token_status(http, base_url, form) for _ in range(AFTER))
    finally:
        server.database.dispose()
    assert set(during) <= {200, 503}, during  # never a 500
    assert during[503] >= 1, during  # the fault was real
    assert recovered_after is not None, f"no write succeeded {RECOVERY_SECONDS} s after"
    assert after == {200: AFTER}, after


@pytest.mark.e2e
def test_s97_charter_serve_refuses_a_database_it_cannot_write(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with run_charter(data_dir):
        pass  # the first start makes the database
    database = data_dir / "charter.db"
    assert database.exists()
    with immutable(database):
        result = subprocess.run(
            [*CHARTER, "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=charter_env(),
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "cannot write to the database" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "Connect your MCP client" not in result.stdout
