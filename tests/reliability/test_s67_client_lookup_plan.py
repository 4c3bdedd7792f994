"""S67 (correctness guard; the timing is in ``bench/many_clients.py``): a token request never
scans the clients table, so 100,000 registered clients cannot slow it down.

Every SQL statement a token request runs is recorded, and SQLite's ``EXPLAIN QUERY PLAN`` of
each one that touches ``oauth_clients`` must use an index (``SEARCH``), never ``SCAN`` the table.
Plans are deterministic for a given schema, so this cannot fail by chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from authserver.context import AuthServer
from authserver.endpoints.app import create_app
from tests.support.codes import code_form, create_code
from tests.support.factories import create_client, create_user
from tests.support.reliability import ISSUER, client_credentials_form, ready_worker

CLIENTS_TABLE = "oauth_clients"
OTHER_CLIENTS = 20


class StatementRecorder:
    """Every single-execution statement (with its parameters) run on an engine."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(
        self,
        _conn: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if not executemany:
            self.statements.append((statement, parameters))


def scans_of_clients(server: AuthServer, statements: list[tuple[str, Any]]) -> list[str]:
    """The plan lines that read ``oauth_clients`` without an index."""
    scans: list[str] = []
    raw = server.database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            verb = statement.lstrip().split(" ", 1)[0].upper()
            if CLIENTS_TABLE not in statement or verb not in {"SELECT", "UPDATE", "DELETE"}:
                continue
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            for row in cursor.fetchall():
                detail = str(row[-1])
                if detail.startswith("SCAN") and CLIENTS_TABLE in detail:
                    scans.append(f"{detail}  <-  {statement}")
        cursor.close()
    finally:
        raw.close()
    return scans


@pytest.fixture
def crowded_server(tmp_path: Path) -> AuthServer:
    server = ready_worker(f"sqlite:///{tmp_path / 'charter.db'}", tmp_path)
    for index in range(OTHER_CLIENTS):
        create_client(server, client_id=f"other-{index:04d}")
    return server


async def run_recorded(
    server: AuthServer, form: dict[str, str]
) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    recorder = StatementRecorder()
    event.listen(server.database.engine, "before_cursor_execute", recorder)
    try:
        transport = httpx.ASGITransport(app=create_app(server))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            response = await http.post("/token", data=form)
    finally:
        event.remove(server.database.engine, "before_cursor_execute", recorder)
    return response, recorder.statements


async def test_s67_client_credentials_never_scans_clients(crowded_server: AuthServer) -> None:
    client, secret = create_client(
        crowded_server,
        confidential=True,
        auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    assert secret is not None
    response, statements = await run_recorded(
        crowded_server, client_credentials_form(client.client_id, secret)
    )
    try:
        assert response.status_code == 200, response.text
        assert any(CLIENTS_TABLE in statement for statement, _ in statements)
        assert scans_of_clients(crowded_server, statements) == []
    finally:
        crowded_server.database.dispose()


async def test_s67_code_redemption_never_scans_clients(crowded_server: AuthServer) -> None:
    client, _ = create_client(crowded_server)
    subject = create_user(crowded_server).id
    issued = create_code(crowded_server, client_id=client.client_id, subject=subject)
    response, statements = await run_recorded(crowded_server, code_form(issued))
    try:
        assert response.status_code == 200, response.text
        assert scans_of_clients(crowded_server, statements) == []
    finally:
        crowded_server.database.dispose()


def test_s67_guard_detects_a_scan(crowded_server: AuthServer) -> None:
    """The guard itself: a lookup by a non-indexed column is reported."""
    statement = "SELECT client_id FROM oauth_clients WHERE client_name = ?"
    try:
        assert scans_of_clients(crowded_server, [(statement, ("x",))]) != []
    finally:
        crowded_server.database.dispose()
