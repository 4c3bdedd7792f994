"""Run the resource server on a loopback socket with test keys (conformance, socket tests)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from joserfc.jwk import Key
from sqlalchemy import Engine

from resourceserver.app import create_app
from resourceserver.jwks import StaticKeySource
from resourceserver.mcp import Registry, TransportOptions
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import create_tables, sqlite_engine
from resourceserver.verifier import JwtTokenVerifier
from tests.resourceserver.tokens import jwks_of, make_signing_key, mint_access_token

ISSUER = "http://127.0.0.1:9"
ALL_SCOPES = "mcp notes:read notes:write"


@dataclass
class RunningServer:
    """A resource server listening on 127.0.0.1."""

    url: str
    settings: ResourceServerSettings
    key: Key
    engine: Engine

    def token(self, scope: str = ALL_SCOPES, subject: str = "alice", client_id: str = "c1") -> str:
        """A valid access token for this server."""
        return mint_access_token(
            self.key,
            issuer=ISSUER,
            audience=self.settings.resource_url,
            subject=subject,
            client_id=client_id,
            scope=scope,
            lifetime=3600,
        )


def database(path: Path) -> Engine:
    """A fresh SQLite file (WAL) holding the resource server's tables."""
    engine = sqlite_engine(str(path))
    create_tables(engine)
    return engine


@contextlib.contextmanager
def serve(
    registry: Registry, engine: Engine, options: TransportOptions | None = None
) -> Iterator[RunningServer]:
    """Serve ``registry`` on a free loopback port in a background thread until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = ResourceServerSettings(resource_url=f"http://127.0.0.1:{port}/mcp", issuer=ISSUER)
    key = make_signing_key()
    verifier = JwtTokenVerifier(settings, StaticKeySource(jwks_of(key)))
    app = create_app(settings, verifier, registry, engine, options=options)
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(settings.resource_url, settings, key, engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
