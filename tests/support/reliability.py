"""Helpers of the reliability tests: worker contexts on one database, clients, token requests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event

from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.storage.schema import prepare_database
from tests.support.charter_process import CharterProcess
from tests.support.factories import create_client

#: MCP protocol version the reliability tests speak.
PROTOCOL_VERSION = "2025-11-25"
ISSUER = "http://127.0.0.1:8000"
RESOURCE = f"{ISSUER}/mcp"
KEY_SECRET = "reliability-key-encryption-secret"


def worker_settings(database_url: str, data_dir: Path, **overrides: Any) -> CharterSettings:
    """The settings every worker of one test deployment shares."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "data_dir": data_dir,
        "database_url": database_url,
        "key_encryption_key": KEY_SECRET,
    }
    values.update(overrides)
    return CharterSettings(**values)


def build_worker(
    database_url: str,
    data_dir: Path,
    *,
    clock: Callable[[], float] | None = None,
    **overrides: Any,
) -> AuthServer:
    """One worker's context (its own engine and key cache); touches nothing in the database."""
    settings = worker_settings(database_url, data_dir, **overrides)
    if clock is None:
        return AuthServer.build(settings)
    return AuthServer.build(settings, clock=clock)


def ready_worker(database_url: str, data_dir: Path, **overrides: Any) -> AuthServer:
    """A worker whose database is migrated and has a signing key."""
    server = build_worker(database_url, data_dir, **overrides)
    prepare_database(server.database.engine)
    server.keys.ensure_signing_key()
    return server


def client_credentials_form(client_id: str, secret: str) -> dict[str, str]:
    """A client_credentials request authenticated in the body (client_secret_post)."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "resource": RESOURCE,
        "scope": "mcp",
    }


def token_request(client: httpx.Client, base_url: str, form: dict[str, str]) -> httpx.Response:
    """POST ``form`` to ``base_url``/token."""
    return client.post(f"{base_url}/token", data=form)


class DatabaseOutage:
    """Make every new connection of ``engine`` fail, as when the database server is down.

    :meth:`begin` also closes the pooled connections, so the very next checkout must connect;
    :meth:`end` lets connections through again. The failure is the driver's own
    ``OperationalError``, which SQLAlchemy wraps as it would a refused connection.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.down = False
        self.attempts = 0
        event.listen(engine, "do_connect", self._on_connect)

    def _on_connect(self, *_args: Any) -> None:
        if self.down:
            self.attempts += 1
            raise self._engine.dialect.loaded_dbapi.OperationalError("database is down (test)")

    def begin(self) -> None:
        """Take the database away."""
        self.down = True
        self._engine.dispose()

    def end(self) -> None:
        """Bring it back."""
        self.down = False

    def remove(self) -> None:
        """Uninstall the hook."""
        event.remove(self._engine, "do_connect", self._on_connect)


def open_mcp_session(mcp_url: str, access_token: str, client_name: str) -> dict[str, str]:
    """Initialize an MCP session (initialize, then notifications/initialized) over plain
    httpx; the headers of the session's later requests."""
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
    }
    initialize = httpx.post(
        mcp_url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": "1"},
            },
        },
    )
    assert initialize.status_code == 200, initialize.text
    headers["Mcp-Session-Id"] = initialize.headers["mcp-session-id"]
    initialized = httpx.post(
        mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert initialized.status_code == 202
    return headers


def prepared_data_dir(tmp_path: Path, database_url: str) -> tuple[Path, str, str]:
    """A migrated deployment with a confidential client; its folder, client id, secret."""
    data_dir = tmp_path / "data"
    server = build_worker(database_url, data_dir, key_encryption_key=None)
    try:
        prepare_database(server.database.engine)
        client, secret = create_client(
            server,
            confidential=True,
            auth_method="client_secret_post",
            grant_types=["client_credentials"],
        )
    finally:
        server.database.dispose()
    assert secret is not None
    return data_dir, client.client_id, secret


def open_session(charter: CharterProcess, client_id: str, secret: str) -> dict[str, str]:
    """Get a token and initialize an MCP session; the headers of later MCP requests."""
    token = httpx.post(
        f"{charter.base_url}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "resource": charter.mcp_url,
            "scope": "mcp",
        },
    )
    assert token.status_code == 200, token.text
    return open_mcp_session(charter.mcp_url, token.json()["access_token"], "s65")
