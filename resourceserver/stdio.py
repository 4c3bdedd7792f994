"""The MCP server over standard input/output (MCP 2025-11-25 "Transports" §stdio; 2026-07-28
"Transports" §stdio).

Each line on stdin is one JSON-RPC message; each line on stdout is one. :class:`StdioBridge`
hands every message to the same :class:`~resourceserver.mcp.transport.McpEndpoint` that serves
Streamable HTTP, as an in-process ASGI request carrying a fixed local
:class:`~resourceserver.principal.Principal` (there is no token on stdio: the process runs as the
local user). So both protocol eras, argument validation, per-tool scopes, elicitation, sampling,
tasks and notifications behave exactly as over HTTP. The bridge does what an HTTP client would:
it keeps the handshake era's session id, opens its standalone stream after
``notifications/initialized``, mirrors the 2026-07-28 routing headers (``Mcp-Method``,
``Mcp-Name``, ``Mcp-Param-*``) from the body, and relays JSON and SSE answers to stdout.
A refusal the HTTP transport answers with a status (a missing scope: 403) becomes a JSON-RPC
error for the request.

Nothing but protocol messages is written to stdout (SECURITY-CASES S86): logs go to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message

from resourceserver.mcp.registry import Registry
from resourceserver.mcp.routing_headers import NAME_SOURCES
from resourceserver.mcp.versions import PROTOCOL_VERSION_KEY
from resourceserver.principal import Principal

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Write = Callable[[bytes], Awaitable[None]]

#: JSON-RPC error code of a request the HTTP transport refused with a status (403, 404 …).
REFUSED = -32600
#: Seconds requests still running at end of input may take to finish.
FINISH_SECONDS = 5.0
_PLAIN = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")
_SCOPE = re.compile(r'scope="([^"]*)"')


def header_value(value: Any) -> str:
    """A body value as an ``Mcp-*`` header value (Base64 sentinel unless plain ASCII)."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if _PLAIN.match(text):
        return text
    return "=?base64?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


class StdioBridge:
    """Relays JSON-RPC lines between a local client and the MCP endpoint as ``principal``."""

    def __init__(
        self,
        endpoint: ASGIApp,
        principal: Principal,
        registry: Registry,
        write: Write,
        path: str = "/mcp",
    ) -> None:
        self.endpoint = endpoint
        self.principal = principal
        self.registry = registry
        self.path = path
        self._write = write
        self._lock = asyncio.Lock()
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._stream: asyncio.Task[None] | None = None

    # -- the loop --------------------------------------------------------------------------------

    async def serve(self, lines: AsyncIterable[bytes]) -> None:
        """Answer every line until the input ends; then let running requests finish."""
        async for line in lines:
            if line.strip():
                await self.accept(line)
        await self.close()

    async def accept(self, line: bytes) -> None:
        """One line of input: requests run concurrently, everything else in order."""
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            await self.send(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
            )
            return
        if (
            isinstance(message, dict)
            and "id" in message
            and message.get("method")
            not in (
                None,
                "initialize",
            )
        ):
            task = asyncio.create_task(self.forward(message))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return
        await self.forward(message)

    async def close(self) -> None:
        """End of input: running requests get :data:`FINISH_SECONDS`, then the session ends."""
        if self._running:
            _done, late = await asyncio.wait(set(self._running), timeout=FINISH_SECONDS)
            for task in late:
                task.cancel()
        if self._stream is not None:
            self._stream.cancel()
        if self.session_id is not None:
            await self._exchange("DELETE", self._headers(None), b"", _ignore)

    async def send(self, message: object) -> None:
        """Write one message as one line on stdout."""
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        async with self._lock:
            await self._write(data + b"\n")

    # -- one message -----------------------------------------------------------------------------

    async def forward(self, message: Any) -> None:
        """POST ``message`` to the endpoint and relay what it answers."""
        request_id = message.get("id") if isinstance(message, dict) else None
        relay = _Relay(
            self, request_id if isinstance(message, dict) and "method" in message else None
        )
        try:
            body = json.dumps(message).encode("utf-8")
            await self._exchange("POST", self._headers(message), body, relay)
            await relay.finish()
        except Exception:
            logger.exception("stdio: could not handle a message")
            if relay.request_id is not None and not relay.answered:
                await self.send(_error(relay.request_id, -32603, "Internal error"))
        if isinstance(message, dict):
            await self._after(message, relay)

    async def _after(self, message: JsonObject, relay: _Relay) -> None:
        if message.get("method") == "initialize" and relay.session_id:
            self.session_id = relay.session_id
            result = relay.result or {}
            version = result.get("protocolVersion")
            self.protocol_version = version if isinstance(version, str) else None
        elif message.get("method") == "notifications/initialized" and self.session_id:
            if self._stream is None:
                self._stream = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """The handshake era's standalone stream: server notifications and requests."""
        try:
            headers = {**self._headers(None), "accept": "text/event-stream"}
            await self._exchange("GET", headers, b"", _Relay(self, None))
        except Exception:
            logger.exception("stdio: the notification stream failed")

    def _headers(self, message: Any) -> dict[str, str]:
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        params = message.get("params") if isinstance(message, dict) else None
        params = params if isinstance(params, dict) else {}
        meta = params.get("_meta")
        version = meta.get(PROTOCOL_VERSION_KEY) if isinstance(meta, dict) else None
        if isinstance(version, str):  # 2026-07-28: stateless, the headers mirror the body
            headers["mcp-protocol-version"] = version
            self._routing_headers(headers, str(message.get("method", "")), params)
            return headers
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        if self.protocol_version is not None:
            headers["mcp-protocol-version"] = self.protocol_version
        return headers

    def _routing_headers(self, headers: dict[str, str], method: str, params: JsonObject) -> None:
        if not method:
            return
        headers["mcp-method"] = method
        source = NAME_SOURCES.get(method)
        name = params.get(source) if source else None
        if isinstance(name, str):
            headers["mcp-name"] = header_value(name)
        tool = self.registry.tools.get(str(name)) if method == "tools/call" else None
        arguments = params.get("arguments")
        if tool is None or not isinstance(arguments, dict):
            return
        for param in tool.param_headers:
            value: Any = arguments
            for part in param.path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                headers[param.header] = header_value(value)

    # -- in-process HTTP -------------------------------------------------------------------------

    async def _exchange(
        self, method: str, headers: dict[str, str], body: bytes, relay: _Sink
    ) -> None:
        """One in-process ASGI request to the endpoint, as :attr:`principal`."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
            "client": ("127.0.0.1", 0),
            "server": ("stdio", 0),
            "state": {"principal": self.principal},
        }
        delivered = False
        ended = asyncio.Event()

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await ended.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                relay.start(int(message["status"]), raw)
            elif message["type"] == "http.response.body":
                await relay.body(message.get("body", b""))
                if not message.get("more_body", False):
                    ended.set()

        try:
            await self.endpoint(scope, receive, send)
        finally:
            ended.set()


class _Sink:
    """What receives one response."""

    def start(self, status: int, headers: dict[str, str]) -> None:
        return None

    async def body(self, chunk: bytes) -> None:
        return None


_ignore = _Sink()


class _Relay(_Sink):
    """Relays one response's JSON-RPC messages to stdout (JSON body or SSE events)."""

    def __init__(self, bridge: StdioBridge, request_id: Any) -> None:
        self.bridge = bridge
        self.request_id = request_id
        self.status = 0
        self.headers: dict[str, str] = {}
        self.buffer = b""
        self.answered = False
        self.result: JsonObject | None = None
        self.session_id: str | None = None

    def start(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        self.session_id = headers.get("mcp-session-id")

    @property
    def streaming(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    async def body(self, chunk: bytes) -> None:
        self.buffer += chunk
        if not self.streaming:
            return
        *events, self.buffer = self.buffer.replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            data = [
                line[5:].removeprefix(b" ")
                for line in event.split(b"\n")
                if line.startswith(b"data:")
            ]
            if data and any(data):
                await self.relay(json.loads(b"\n".join(data)))

    async def finish(self) -> None:
        """The response ended: relay a JSON body, or turn an HTTP refusal into an error."""
        if self.streaming or self.status == 202:
            return
        try:
            message = json.loads(self.buffer) if self.buffer.strip() else None
        except ValueError:
            message = None
        if isinstance(message, list) or (isinstance(message, dict) and "jsonrpc" in message):
            await self.relay(message)
        elif self.request_id is not None:
            await self.bridge.send(_refusal(self.request_id, self.status, message, self.headers))

    async def relay(self, message: Any) -> None:
        if isinstance(message, dict) and "id" in message and message.get("id") == self.request_id:
            self.answered = True
            result = message.get("result")
            self.result = result if isinstance(result, dict) else None
        await self.bridge.send(message)


def _error(request_id: Any, code: int, text: str, data: Any = None) -> JsonObject:
    error: JsonObject = {"code": code, "message": text}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _refusal(request_id: Any, status: int, body: Any, headers: dict[str, str]) -> JsonObject:
    """The JSON-RPC error for a request the transport refused with an HTTP status."""
    body = body if isinstance(body, dict) else {}
    reason = str(body.get("error_description") or body.get("error") or f"HTTP {status}")
    data: JsonObject = {"status": status}
    if body.get("error"):
        data["error"] = body["error"]
    scope = _SCOPE.search(headers.get("www-authenticate", ""))
    if scope:
        data["requiredScopes"] = scope.group(1).split()
    return _error(request_id, REFUSED, reason, data)
