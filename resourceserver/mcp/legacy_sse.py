"""The HTTP+SSE transport of MCP 2024-11-05 ("Transports" §HTTP with SSE), for clients that
speak nothing newer.

``GET /sse`` (beside the MCP endpoint: ``/echo/mcp`` has ``/echo/sse``) opens a
``text/event-stream`` whose first event is ``endpoint``: the relative URL of the message
endpoint, ``/messages?session_id=<opaque id>``. The client POSTs each JSON-RPC message there
and gets ``202 Accepted``; responses, notifications and server-to-client requests travel down
the stream as ``message`` events, with a comment line every ``keepalive_seconds`` of silence.

Nothing here is a second JSON-RPC engine: a stream is an ordinary handshake-era MCP session
(:mod:`resourceserver.mcp.sessions`) whose messages all travel on the session's standalone
stream of the SQL event log (:mod:`~resourceserver.mcp.events`), and requests are answered by
:class:`~resourceserver.mcp.handshake.HandshakeEra` with the same
:class:`~resourceserver.mcp.dispatch.Dispatcher`, scope checks and cancellation.

Several workers (PostgreSQL): **the worker that receives a POST dispatches it** and appends
what the handler sends (the response, progress, sampling requests) as event rows of the
session; **the worker holding the stream relays those rows**, woken by the in-process
:class:`~resourceserver.mcp.bus.Bus`, PostgreSQL ``NOTIFY``
(:mod:`~resourceserver.mcp.wakeups`) or the log's shared watcher, exactly like a Streamable HTTP
GET stream. No message waits in one worker's memory, so a POST may reach any worker, and a
client's answer to a sampling request reaches the handler wherever it runs
(:mod:`~resourceserver.mcp.pending`). The only new table, ``rs_mcp_legacy_streams``
(:mod:`~resourceserver.mcp.legacy_streams`), binds the URL's id to the session and principal.

Security (SECURITY-CASES S85): both paths sit behind the same Origin/Host guard, bearer
authentication (401/403 challenges naming ``resource_metadata``, per-tool scopes, anonymous
callers for public tools within their rate limit) as the MCP endpoint. The message endpoint
answers 404 for an unknown, closed or over-long ``session_id`` and for any principal other than
the stream's (subject, client and token audience), so that it never tells whether a stream
exists; bodies are capped at ``max_body_bytes`` (413); open streams per principal are capped,
and so are the requests of one stream running at once (429).

A stream cannot be resumed (the 2024-11-05 transport has no ``Last-Event-ID``): when the
connection ends, its session ends, with its handlers and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from resourceserver.errors import InsufficientScopeError
from resourceserver.mcp import claims, http
from resourceserver.mcp.cancellation import request_key
from resourceserver.mcp.dispatch import Call
from resourceserver.mcp.errors import PARSE_ERROR
from resourceserver.mcp.events import SessionGoneError
from resourceserver.mcp.handshake import STANDALONE_STREAM
from resourceserver.mcp.jsonrpc import (
    JsonRpcError,
    Notification,
    error_message,
    parse_message,
    result_message,
)
from resourceserver.mcp.jsonrpc import Request as RpcRequest
from resourceserver.mcp.jsonrpc import Response as RpcResponse
from resourceserver.mcp.legacy_streams import LegacyStream, LegacyStreams, TooManyStreamsError
from resourceserver.mcp.sessions import SessionState
from resourceserver.mcp.streams import RequestStream, dumps, replay
from resourceserver.mcp.transport import McpEndpoint
from resourceserver.principal import Principal

__all__ = ["LEGACY_VERSION", "LegacyChannel", "LegacySse", "legacy_paths"]

logger = logging.getLogger(__name__)

#: The protocol revision whose transport this is.
LEGACY_VERSION = "2024-11-05"
#: Requests of one stream running at once in one worker: a POST is answered before its
#: request runs, so nothing else (no open connection per request) bounds them.
MAX_RUNNING_PER_SESSION = 32


def legacy_paths(resource_path: str) -> tuple[str, str]:
    """The stream and message paths beside an MCP path: ``/mcp`` → ``/sse``, ``/messages``;
    ``/echo/mcp`` → ``/echo/sse``; a path not ending in ``/mcp`` gets them below it."""
    base = resource_path.rstrip("/").removesuffix("/mcp")
    return f"{base}/sse", f"{base}/messages"


class LegacyChannel(RequestStream):
    """Where a handler's messages go: all on the session's one stream, never a final event
    (the stream outlives every request)."""

    async def send(self, message: dict[str, Any], *, final: bool = False) -> None:
        try:
            await self.log.append(self.session_id, STANDALONE_STREAM, dumps(message), final=False)
        except SessionGoneError:
            # The client closed the stream (its session ended) while this request ran here.
            logger.info("legacy SSE stream closed; dropped a message for it")
        self.finished = self.finished or final

    async def upgrade(self) -> None:
        return

    def finish(self, fallback: dict[str, Any]) -> None:
        # A cancelled request gets no response (2024-11-05 "Cancellation").
        self.finished = True

    async def close_stream(self) -> None:
        return


def _body(data: bytes, *, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


class _Asgi:
    """An ASGI app calling one coroutine (a bound method is not one to Starlette's Route)."""

    def __init__(self, handler: ASGIApp) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


class LegacySse:
    """The two endpoints of the HTTP+SSE transport of one MCP server."""

    def __init__(self, endpoint: McpEndpoint, *, resource_url: str, resource_path: str) -> None:
        self.endpoint = endpoint
        self.resource = resource_url
        self.sse_path, self.messages_path = legacy_paths(resource_path)
        options = endpoint.options
        self.streams = LegacyStreams(
            endpoint.database,
            options.session_ttl_seconds,
            max_per_principal=options.legacy_streams_per_principal,
            max_anonymous=options.legacy_anonymous_streams,
        )
        #: How often an open stream extends its own life and its session's.
        self.touch_every = min(60.0, options.session_ttl_seconds / 10)
        self.stream_app = _Asgi(self.stream)
        self.messages_app = _Asgi(self.messages)

    @property
    def paths(self) -> tuple[str, str]:
        return self.sse_path, self.messages_path

    def _refusal(self, request: Request) -> tuple[Principal, Response | None]:
        principal = McpEndpoint._principal(request)
        base = frozenset({self.endpoint.dispatcher.base_scope} - {""})
        if not principal.anonymous and not principal.has_scopes(base):
            return principal, self.endpoint.forbidden(InsufficientScopeError(base))
        return principal, None

    # -- GET /sse -------------------------------------------------------------------------------

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "GET":
            await Response(status_code=405, headers={"Allow": "GET"})(scope, receive, send)
            return
        principal, refused = self._refusal(request)
        accept = request.headers.get("accept")
        if refused is None and accept and not http.accepts(request, "text/event-stream"):
            refused = http.rpc_error(
                406, -32600, "Not Acceptable: Accept must include text/event-stream"
            )
        if refused is not None:
            await refused(scope, receive, send)
            return
        self.endpoint.ensure_listening()
        sessions = self.endpoint.sessions
        await sessions.purge_expired()
        await self.streams.purge_expired()
        session = await sessions.create(principal, LEGACY_VERSION, {}, {})
        try:
            opened = await self.streams.open(principal, self.resource, session.id)
        except TooManyStreamsError:
            await sessions.delete(session.id)
            body = {"error": "rate_limited", "error_description": "too many open SSE streams"}
            limited = JSONResponse(body, status_code=429, headers={"Retry-After": "60"})
            await limited(scope, receive, send)
            return
        own = await claims.claim(self.endpoint.log, session.id, STANDALONE_STREAM, None)
        await self._serve(scope, receive, send, opened, self._events(opened, own.row))

    async def _events(self, stream: LegacyStream, claim: int) -> AsyncGenerator[str, None]:
        yield f"event: endpoint\ndata: {self.messages_path}?session_id={stream.id}\n\n"
        endpoint = self.endpoint
        clock = anyio.current_time
        touched = clock()
        async for chunk in replay(
            endpoint.log,
            stream.session_id,
            STANDALONE_STREAM,
            claim,
            claims.Ownership(claim, claim),
            endpoint.stopping,
            keepalive=endpoint.options.keepalive_seconds,
        ):
            yield chunk
            if clock() - touched >= self.touch_every:
                touched = clock()
                if not await self.streams.touch(stream):
                    return

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        stream: LegacyStream,
        events: AsyncGenerator[str, None],
    ) -> None:
        """Send ``events`` until they end or the client leaves; then the session ends."""
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache, no-transform"),
            (b"x-accel-buffering", b"no"),
        ]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async with anyio.create_task_group() as group:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(until_disconnect)
                with contextlib.suppress(OSError):
                    async with contextlib.aclosing(events) as chunks:
                        async for chunk in chunks:
                            await send(_body(chunk.encode(), more=True))
                    await send(_body(b"", more=False))
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self.endpoint.cancellations.cancel_session(stream.session_id)
                try:
                    await self.streams.close(stream)
                except Exception:
                    logger.exception("could not end a legacy SSE session; it expires later")

    # -- POST /messages -------------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._post(request)
        await response(scope, receive, send)

    async def _post(self, request: Request) -> Response:
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        principal, session, body = found
        self.endpoint.ensure_listening()  # answers to our questions may arrive at another worker
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return http.rpc_error(400, PARSE_ERROR, "Parse error: body is not valid JSON")
        if isinstance(raw, list):
            return http.bad_request("JSON-RPC batches are not accepted here")
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return JSONResponse(error_message(None, exc), status_code=400)
        if isinstance(message, Notification):
            await self.endpoint.handshake._notification(session, message)
        elif isinstance(message, RpcResponse):
            await self.endpoint.pending.answer(session.id, message)
        elif message.method == "initialize":
            await self._initialize(session, message)
        else:
            refusal = self.endpoint.dispatcher.denial(message, principal)
            if refusal is not None:
                return self.endpoint.forbidden(refusal)
            if self._running(session.id) >= MAX_RUNNING_PER_SESSION:
                busy = {"error": "rate_limited", "error_description": "too many running requests"}
                return JSONResponse(busy, status_code=429, headers={"Retry-After": "1"})
            self._start(session, principal, message)
        return PlainTextResponse("Accepted", status_code=202)

    async def _session(self, request: Request) -> tuple[Principal, SessionState, bytes] | Response:
        """The caller, the session its ``session_id`` names and the body; else the refusal
        (404 for anything but the stream's own principal, S85)."""
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        principal, refused = self._refusal(request)
        if refused is not None:
            return refused
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return http.rpc_error(415, -32600, "Unsupported Media Type: use application/json")
        body = await http.read_body(request, self.endpoint.options.max_body_bytes)
        if body is None:
            return http.rpc_error(413, -32600, "Payload Too Large")
        stream_id = request.query_params.get("session_id", "")
        found = await self.streams.find(stream_id, principal, self.resource)
        session = await self.endpoint.sessions.load(found.session_id, principal) if found else None
        if session is None:
            return http.session_not_found()
        return principal, session, body

    async def _initialize(self, session: SessionState, message: RpcRequest) -> None:
        params = message.params
        version, result = self.endpoint.dispatcher.initialize(params)
        if params.get("protocolVersion") == LEGACY_VERSION:
            version = result["protocolVersion"] = LEGACY_VERSION
        capabilities = params.get("capabilities")
        client_info = params.get("clientInfo")
        await self.endpoint.sessions.update(
            session.id,
            protocol_version=version,
            client_capabilities=capabilities if isinstance(capabilities, dict) else {},
            client_info=client_info if isinstance(client_info, dict) else {},
        )
        reply = result_message(message.id, result)
        await self.endpoint.log.append(session.id, STANDALONE_STREAM, dumps(reply), final=False)

    def _running(self, session_id: str) -> int:
        """Requests of the session running in this process."""
        return sum(1 for owner, _ in self.endpoint.cancellations.running if owner == session_id)

    def _start(self, session: SessionState, principal: Principal, message: RpcRequest) -> None:
        """Run the request here; what it sends goes to the stream, wherever that is held."""
        endpoint = self.endpoint
        channel = LegacyChannel(
            log=endpoint.log, pending=endpoint.pending, session_id=session.id, sse_allowed=True
        )
        call = Call(message, principal, session, channel, notifier=endpoint.notifier)
        # Outlives the POST; tracked, so that cancellation and shutdown reach it.
        task = asyncio.create_task(endpoint.handshake.run(call, channel))
        endpoint.cancellations.track(request_key(session.id, message.id), task)
