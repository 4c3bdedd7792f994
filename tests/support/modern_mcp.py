"""Helpers of the 2026-07-28 tests: an in-process resource server with test keys (and a
revocation view the test controls), and a hand-rolled stateless client that sends the
``_meta`` envelope and the routing headers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.jwk import Key
from sqlalchemy import Engine
from starlette.applications import Starlette

from resourceserver.app import create_app
from resourceserver.jwks import StaticKeySource
from resourceserver.mcp import Registry
from resourceserver.mcp.transport import McpEndpoint, TransportOptions
from resourceserver.settings import ResourceServerSettings
from resourceserver.verifier import JwtTokenVerifier
from tests.support.live import serve_app
from tests.support.mcp_harness import ALL_SCOPES, ISSUER, messages_of
from tests.support.tokens import jwks_of, make_signing_key, mint_access_token

URL = "http://127.0.0.1:8000/mcp"
VERSION = "2026-07-28"
EVERYTHING = {"elicitation": {}, "sampling": {}, "roots": {}}
TASKS = {"extensions": {"io.modelcontextprotocol/tasks": {}}}
NAME_SOURCES = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}


@dataclass
class Revocations:
    """A revocation view the test fills."""

    revoked: set[str] = field(default_factory=set)

    async def is_revoked(self, jti: str) -> bool:
        return jti in self.revoked


@dataclass
class ModernApp:
    """An in-process resource server (httpx ASGITransport)."""

    app: Starlette
    settings: ResourceServerSettings
    key: Key
    revocations: Revocations
    #: Where ``client()`` sends requests (in-process unless served on a socket).
    base_url: str | None = None

    @property
    def endpoint(self) -> McpEndpoint:
        endpoint: McpEndpoint = self.app.state.mcp_endpoint
        return endpoint

    def token(
        self,
        scope: str = ALL_SCOPES,
        subject: str = "alice",
        client_id: str = "c1",
        lifetime: int = 3600,
        jti: str | None = None,
    ) -> str:
        return mint_access_token(
            self.key,
            issuer=ISSUER,
            audience=self.settings.resource_url,
            subject=subject,
            client_id=client_id,
            scope=scope,
            lifetime=lifetime,
            claim_overrides={"jti": jti} if jti else None,
        )

    def client(self) -> httpx.AsyncClient:
        if self.base_url is not None:
            return httpx.AsyncClient(base_url=self.base_url, timeout=30)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://127.0.0.1:8000"
        )


def modern_app(
    registry: Registry,
    engine: Engine,
    options: TransportOptions | None = None,
    *,
    keys: Sequence[bytes] | None = None,
    signing_key: Key | None = None,
) -> ModernApp:
    """The resource server at ``URL`` with a test signing key and a controllable revocation view.

    Apps given the same ``keys`` and ``signing_key`` (and engine) act as workers of one
    deployment.
    """
    settings = ResourceServerSettings(resource_url=URL, issuer=ISSUER)
    key = signing_key or make_signing_key()
    revocations = Revocations()
    verifier = JwtTokenVerifier(settings, StaticKeySource(jwks_of(key)), revocation=revocations)
    app = create_app(
        settings,
        verifier,
        registry,
        engine,
        options=options,
        request_state_keys=list(keys) if keys else [secrets.token_bytes(32)],
    )
    return ModernApp(app, settings, key, revocations)


def envelope(capabilities: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
    }
    meta.update(extra)
    return meta


class ModernHttp:
    """A stateless 2026-07-28 client: every request carries ``_meta`` and the headers."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token: str,
        capabilities: dict[str, Any] | None = None,
        url: str = "/mcp",
    ) -> None:
        self.client = client
        self.token = token
        self.capabilities = capabilities if capabilities is not None else dict(EVERYTHING)
        self.url = url
        self._ids = itertools.count(1)

    def headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": VERSION,
            "Mcp-Method": method,
        }
        source = NAME_SOURCES.get(method)
        if source and isinstance(params.get(source), str):
            headers["Mcp-Name"] = params[source]
        return headers

    async def post(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        headers: dict[str, str | None] | None = None,
        meta: dict[str, Any] | None = None,
        request_id: str | int | None = None,
    ) -> httpx.Response:
        """POST one request; ``headers`` values of None remove that header."""
        body_params = dict(params or {})
        if meta is not None or "_meta" not in body_params:
            body_params["_meta"] = meta if meta is not None else envelope(self.capabilities)
        sent = self.headers(method, body_params)
        for name, value in (headers or {}).items():
            sent = {k: v for k, v in sent.items() if k.lower() != name.lower()}
            if value is not None:
                sent[name] = value
        body = {
            "jsonrpc": "2.0",
            "id": request_id if request_id is not None else next(self._ids),
            "method": method,
            "params": body_params,
        }
        return await self.client.post(self.url, content=json.dumps(body), headers=sent)

    async def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The final JSON-RPC message of a request (any HTTP status)."""
        response = await self.post(method, params, **kw)
        return messages_of(response)[-1]

    async def result(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The ``result`` of a request that must succeed."""
        response = await self.post(method, params, **kw)
        assert response.status_code == 200, response.text
        message = messages_of(response)[-1]
        assert "result" in message, message
        return message["result"]


class ListenReader:
    """One ``subscriptions/listen`` stream read in the background (a real socket is needed:
    httpx's in-process transport waits for the whole body)."""

    def __init__(
        self, mcp: ModernHttp, notifications: dict[str, Any], request_id: str | int = "listen-1"
    ) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status: int | None = None
        self.error: Exception | None = None
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        params = {"notifications": notifications, "_meta": envelope(mcp.capabilities)}
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "subscriptions/listen",
            "params": params,
        }
        headers = mcp.headers("subscriptions/listen", params)
        self._task = asyncio.create_task(self._read(mcp, body, headers))

    @classmethod
    async def open(cls, mcp: ModernHttp, notifications: dict[str, Any], **kw: Any) -> ListenReader:
        """Open a stream and wait for its acknowledgment (or its end)."""
        reader = cls(mcp, notifications, **kw)
        await reader.until(lambda: bool(reader.messages), "acknowledgment")
        return reader

    async def _read(self, mcp: ModernHttp, body: dict[str, Any], headers: dict[str, str]) -> None:
        try:
            async with mcp.client.stream("POST", mcp.url, json=body, headers=headers) as response:
                self.status = response.status_code
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    self.messages.append(json.loads(await response.aread()))
                    return
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        self.messages.append(json.loads(line[6:]))
                        self._changed.set()
        except Exception as exc:  # reported by the assertions
            self.error = exc
        finally:
            self.ended.set()
            self._changed.set()

    async def until(self, condition: Any, what: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                if self.ended.is_set() and not condition():
                    raise AssertionError(f"stream ended before {what}: {self.messages}")
                self._changed.clear()
                await self._changed.wait()

    def methods(self) -> list[str]:
        return [str(m.get("method", "(result)")) for m in self.messages]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@contextlib.contextmanager
def on_socket(app: ModernApp) -> Iterator[ModernApp]:
    """Serve ``app`` on a loopback socket; its URL then points there."""
    with serve_app(app.app) as base:
        yield dataclasses.replace(app, base_url=base)
