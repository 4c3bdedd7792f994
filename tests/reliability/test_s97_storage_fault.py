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

import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from authserver.storage.models import Client
from tests.reliability.test_s60_connection_loss import terminate_backends
from tests.support.charter_process import CHARTER, charter_env, run_charter
from tests.support.codes import code_form, create_code, refresh_form
from tests.support.factories import create_client, create_user
from tests.support.live import free_port, serve_app
from tests.support.reliability import client_credentials_form, ready_worker

RECOVERY_SECONDS = 5.0
#: Requests in the window, and consecutive ones that must all succeed after it.
DURING = 10
AFTER = 30
#: Longest a request may take during the window (a clean failure, not a hang).
WINDOW_REQUEST_SECONDS = 5.0


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


def test_s97_read_only_window_fails_cleanly_and_half_writes_nothing(tmp_path: Path) -> None:
    """Every write of the window — a client credentials grant, a refresh, a code redemption and a
    registration — answers a prompt 503 ``temporarily_unavailable`` (JSON, ``Retry-After``,
    ``no-store``), changes no row, and succeeds once retried after the window: the refresh token
    is not rotated, the code is not consumed (each is one transaction)."""
    database = tmp_path / "charter.db"
    server = ready_worker(f"sqlite:///{database}", tmp_path / "data")
    form = static_client(server)
    public, _ = create_client(server)
    user = create_user(server)
    redeemed = create_code(server, client_id=public.client_id, subject=user.id)
    waiting = create_code(server, client_id=public.client_id, subject=user.id)
    registration = {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
    try:
        with serve_app(create_app(server)) as base_url, httpx.Client(timeout=30) as http:
            first = http.post(f"{base_url}/token", data=code_form(redeemed))
            assert first.status_code == 200, first.text
            refresh = refresh_form(first.json()["refresh_token"], public.client_id)
            requests: list[tuple[str, dict[str, Any]]] = [
                ("/token", {"data": form}),
                ("/token", {"data": refresh}),
                ("/token", {"data": code_form(waiting)}),
                ("/register", {"json": registration}),
            ]
            before = row_counts(database)
            with immutable(database):
                server.database.engine.dispose()  # new connections open during the window
                during = []
                for path, body in requests:
                    started = time.monotonic()
                    response = http.post(f"{base_url}{path}", **body)
                    during.append((path, response, time.monotonic() - started))
            unchanged = row_counts(database)
            after = [http.post(f"{base_url}{path}", **body) for path, body in requests]
    finally:
        server.database.dispose()
    for path, response, seconds in during:
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert response.json()["error"] == "temporarily_unavailable", response.text
        assert response.json().get("error_description"), response.text
        assert response.headers["retry-after"], response.headers
        assert response.headers["cache-control"] == "no-store", response.headers
        assert seconds < WINDOW_REQUEST_SECONDS, (path, seconds)  # no hang
    assert unchanged == before  # nothing half-written
    assert [response.status_code for response in after] == [200, 200, 200, 201], [
        response.text for response in after
    ]


def test_s97_reads_in_the_window_leave_no_read_only_connection_behind(tmp_path: Path) -> None:
    """SQLite opens a file it cannot write read-only even with ``mode=rw``, and such a
    connection reads fine: one that served only reads during the window went back to the pool
    and failed the first write after it (503 with the file writable again, however long after).
    Reads keep working in the window; the first write afterwards succeeds."""
    database = tmp_path / "charter.db"
    server = ready_worker(f"sqlite:///{database}", tmp_path / "data")
    form = static_client(server)
    try:
        with serve_app(create_app(server)) as base_url, httpx.Client(timeout=30) as http:
            assert token_status(http, base_url, form) == 200
            with immutable(database):
                server.database.engine.dispose()
                assert token_status(http, base_url, form) == 503  # the fault is real
                for _ in range(3):  # a read, as the MCP server's revocation poll makes
                    with server.database.transaction() as session:
                        assert session.scalar(select(func.count()).select_from(Client)) == 1
            after = [token_status(http, base_url, form) for _ in range(AFTER)]
    finally:
        server.database.dispose()
    assert after == [200] * AFTER, after


def row_counts(database: Path) -> dict[str, int]:
    """The number of rows of every table, read with a separate read-only connection."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608
            for table in tables
        }


@contextmanager
def read_only_database(database_url: str) -> Iterator[None]:
    """The PostgreSQL database of ``database_url`` takes no writes until the block ends: its
    sessions default to read-only (``default_transaction_read_only``, as an operator sets it for
    maintenance or a full disk), and its connections are cut so that the server's new sessions
    get the setting."""
    url = make_url(database_url)
    name = url.database
    # The administrator works from another database, which stays writable.
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        terminate_backends(database_url, wait_gone=True)
        try:
            yield
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_s97_postgres_read_only_window_recovers_without_restart(
    postgres_url: str, tmp_path: Path
) -> None:
    """The same window on PostgreSQL: the sessions opened during it stay read-only after the
    database is writable again (the default applies at session start), so before the fix every
    write kept failing (``cannot execute INSERT in a read-only transaction``) until the pool
    recycled them, 30 minutes later. Writes in the window answer 503 and write nothing."""
    server = ready_worker(postgres_url, tmp_path / "data")
    form = static_client(server)
    try:
        with serve_app(create_app(server)) as base_url, httpx.Client(timeout=30) as http:
            assert token_status(http, base_url, form) == 200
            with read_only_database(postgres_url):
                during = [http.post(f"{base_url}/token", data=form) for _ in range(DURING)]
            writable_at = time.monotonic()
            recovered_after = None
            while time.monotonic() - writable_at < RECOVERY_SECONDS:
                if token_status(http, base_url, form) == 200:
                    recovered_after = time.monotonic() - writable_at
                    break
            after = Counter(token_status(http, base_url, form) for _ in range(AFTER))
    finally:
        server.database.dispose()
    for response in during:
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable", response.text
    assert recovered_after is not None, f"no write succeeded {RECOVERY_SECONDS} s after"
    assert after == {200: AFTER}, after
