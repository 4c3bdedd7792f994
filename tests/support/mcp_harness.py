"""Run the resource server on a loopback socket with test keys (conformance, socket tests)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from joserfc.jwk import Key
from sqlalchemy import Engine
from starlette.applications import Starlette

from resourceserver.app import create_app
from resourceserver.jwks import StaticKeySource
from resourceserver.mcp import Registry
from resourceserver.mcp.transport import TransportOptions
from resourceserver.settings import ResourceServerSettings
from resourceserver.storage import create_tables, sqlite_engine
from resourceserver.verifier import JwtTokenVerifier
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token

ISSUER = "http://127.0.0.1:9"
ALL_SCOPES = "mcp notes:read notes:write"


def _token(
    key: Key, settings: ResourceServerSettings, scope: str, subject: str, client_id: str
) -> str:
    """An hour-long access token from the test issuer for the server ``settings`` describe."""
    return mint_access_token(
        key,
        issuer=ISSUER,
        audience=settings.resource_url,
        subject=subject,
        client_id=client_id,
        scope=scope,
        lifetime=3600,
    )


@dataclass
class RunningServer:
    """A resource server listening on 127.0.0.1."""

    url: str
    settings: ResourceServerSettings
    key: Key
    engine: Engine

    def token(self, scope: str = ALL_SCOPES, subject: str = "alice", client_id: str = "c1") -> str:
        """A valid access token for this server."""
        return _token(self.key, self.settings, scope, subject, client_id)


def database(path: Path) -> Engine:
    """A fresh SQLite file (WAL) holding the resource server's tables."""
    engine = sqlite_engine(str(path))
    create_tables(engine)
    return engine


def _app(
    resource_url: str, registry: Registry, engine: Engine, options: TransportOptions | None
) -> tuple[Starlette, ResourceServerSettings, Key]:
    """The resource server at ``resource_url`` trusting a fresh test key; its settings and key."""
    settings = ResourceServerSettings(resource_url=resource_url, issuer=ISSUER)
    key = make_signing_key()
    verifier = JwtTokenVerifier(settings, StaticKeySource(jwks_of(key)))
    return create_app(settings, verifier, registry, engine, options=options), settings, key


@contextlib.contextmanager
def serve(
    registry: Registry, engine: Engine, options: TransportOptions | None = None
) -> Iterator[RunningServer]:
    """Serve ``registry`` on a free loopback port in a background thread until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app, settings, key = _app(f"http://127.0.0.1:{port}/mcp", registry, engine, options)
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


# -- in-process and client helpers ----------------------------------------------------------

LOCAL_URL = "http://127.0.0.1:8000/mcp"
ACCEPT_BOTH = "application/json, text/event-stream"


@dataclass
class LocalApp:
    """An app served in-process (httpx ASGITransport) with its signing key."""

    app: Starlette
    settings: ResourceServerSettings
    key: Key

    def token(self, scope: str = ALL_SCOPES, subject: str = "alice", client_id: str = "c1") -> str:
        return _token(self.key, self.settings, scope, subject, client_id)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://127.0.0.1:8000"
        )


def local_app(
    registry: Registry, engine: Engine, options: TransportOptions | None = None
) -> LocalApp:
    """The resource server at ``LOCAL_URL`` with a fresh test key."""
    return LocalApp(*_app(LOCAL_URL, registry, engine, options))


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of a ``text/event-stream`` body: dicts with ``id``, ``data``, ``retry``."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            event[name] = event[name] + "\n" + value if name in event else value
        if event:
            events.append(event)
    return events


def messages_of(response: httpx.Response) -> list[dict[str, Any]]:
    """JSON-RPC messages of a JSON or SSE response."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(e["data"]) for e in parse_sse(response.text) if e.get("data")]
    return [response.json()]


class McpHttp:
    """A minimal hand-rolled Streamable HTTP client for tests."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self.client = client
        self.url = url
        self.token = token
        self.session: str | None = None
        self._ids = 0

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": ACCEPT_BOTH,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-11-25",
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        headers.update(extra)
        return headers

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def post(self, message: dict[str, Any], **extra: str) -> httpx.Response:
        return await self.client.post(self.url, json=message, headers=self.headers(**extra))

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.post(
            {
                "jsonrpc": "2.0",
                "id": self.next_id(),
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": capabilities or {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            }
        )
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        await self.notify("notifications/initialized")
        result: dict[str, Any] = response.json()["result"]
        return result

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return await self.post(message)

    async def request(
        self, method: str, params: dict[str, Any] | None = None
    ) -> tuple[httpx.Response, list[dict[str, Any]]]:
        """POST a request; the HTTP response and every JSON-RPC message it carried."""
        message = {"jsonrpc": "2.0", "id": self.next_id(), "method": method, "params": params or {}}
        response = await self.post(message)
        return response, messages_of(response) if response.status_code == 200 else []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The final JSON-RPC response message of a request (asserting HTTP 200)."""
        response, messages = await self.request(method, params)
        assert response.status_code == 200, (response.status_code, response.text)
        final: dict[str, Any] = messages[-1]
        return final
