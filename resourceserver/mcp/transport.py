"""Streamable HTTP: one endpoint for POST, GET and DELETE.

MCP 2025-11-25 "Transports" §Streamable HTTP.

The endpoint is stateless in memory apart from running handlers: sessions, the event log and
server-to-client requests live in SQL, so consecutive requests of a session may reach different
workers. The bearer middleware runs first and leaves the :class:`Principal` in
``scope["state"]["principal"]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from resourceserver.errors import InsufficientScopeError
from resourceserver.mcp import claims, http
from resourceserver.mcp.cancellation import CANCEL_STREAM, Cancellations, request_key
from resourceserver.mcp.dispatch import Call, Dispatcher
from resourceserver.mcp.events import Bus, EventLog, parse_event_id
from resourceserver.mcp.jsonrpc import (
    INTERNAL_ERROR,
    PARSE_ERROR,
    JsonRpcError,
    Notification,
    error_message,
    notification_message,
    parse_message,
    result_message,
)
from resourceserver.mcp.jsonrpc import Request as RpcRequest
from resourceserver.mcp.jsonrpc import Response as RpcResponse
from resourceserver.mcp.pending import PendingRequests
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.sessions import MAX_SESSIONS_PER_PRINCIPAL, SessionState, SessionStore
from resourceserver.mcp.streams import Item, RequestStream, drain, dumps, replay, sse_event
from resourceserver.mcp.versions import is_supported
from resourceserver.mcp.wakeups import PgListener
from resourceserver.principal import Principal
from resourceserver.storage import Database

logger = logging.getLogger(__name__)

#: Builds the HTTP 403 step-up challenge (RS-auth's ``challenge_response`` bound to settings).
Forbidden = Callable[[InsufficientScopeError], Response]

REQUEST_CANCELLED = -32800
#: Stream id of the session's standalone GET stream (server-initiated messages).
STANDALONE_STREAM = "standalone"


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Tunables of the Streamable HTTP endpoint."""

    session_ttl_seconds: float = 3600.0
    #: Live sessions per principal (subject and client); a new one ends the least recently used.
    max_sessions_per_principal: int = MAX_SESSIONS_PER_PRINCIPAL
    #: ``retry:`` sent in priming events (milliseconds).
    retry_ms: int = 1000
    #: How often a worker waiting on another worker polls the database.
    poll_interval: float = 0.1
    #: How long a tool waits for the client to answer sampling/elicitation.
    client_answer_timeout: float = 300.0
    #: How often a worker running handlers looks for cancellations sent to other workers.
    cancel_poll_interval: float = 0.5
    #: A request whose handler stays silent longer than this is answered with SSE (priming
    #: event first), so that it can be resumed and kept alive.
    json_wait_seconds: float = 10.0
    #: Seconds of silence after which an SSE stream gets a comment line.
    keepalive_seconds: float = 15.0
    max_body_bytes: int = 1_000_000
    page_size: int = 50


class McpEndpoint:
    """The ASGI app mounted at the MCP path."""

    def __init__(
        self,
        *,
        registry: Registry,
        database: Database,
        forbidden: Forbidden,
        base_scope: str,
        options: TransportOptions | None = None,
    ) -> None:
        self.options = options or TransportOptions()
        self.database = database
        self.bus = Bus()
        self.sessions = SessionStore(
            database,
            self.options.session_ttl_seconds,
            max_per_principal=self.options.max_sessions_per_principal,
        )
        self.log = EventLog(database, self.bus)
        self.pending = PendingRequests(
            database,
            self.bus,
            poll_interval=self.options.poll_interval,
            timeout=self.options.client_answer_timeout,
        )
        self.dispatcher = Dispatcher(
            registry, self.sessions, base_scope=base_scope, page_size=self.options.page_size
        )
        self.forbidden = forbidden
        self.stopping = asyncio.Event()
        self.cancellations = Cancellations(self.log, self.options.cancel_poll_interval)
        self._listener: PgListener | None = None
        self._listening = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._listening:
            self._listening = True
            self._listener = PgListener.start_for(self.database.engine, self.bus)
        request = Request(scope, receive)
        base = frozenset({self.dispatcher.base_scope} - {""})
        if not self._principal(request).has_scopes(base):
            await self.forbidden(InsufficientScopeError(base))(scope, receive, send)
            return
        if request.method == "POST":
            response = await self.post(request)
        elif request.method == "GET":
            response = await self.get(request)
        elif request.method == "DELETE":
            response = await self.delete(request)
        else:
            response = Response(status_code=405, headers={"Allow": "GET, POST, DELETE"})
        await response(scope, receive, send)

    def drain(self) -> None:
        """End open SSE streams now (call before the server's graceful shutdown).

        Running handlers go on; their events stay in the log, so clients resume elsewhere.
        """
        self.stopping.set()

    async def aclose(self) -> None:
        """Shutdown: end open SSE streams and cancel running handlers."""
        self.stopping.set()
        if self._listener is not None:
            self._listener.stop()
        await self.cancellations.aclose()

    # -- server-initiated messages --------------------------------------------------------------

    async def publish(self, session_id: str, message: dict[str, object]) -> None:
        """Send a message outside any request: on the session's newest standalone GET stream."""
        await self.log.append(session_id, STANDALONE_STREAM, dumps(message), final=False)

    async def notify_resource_updated(self, uri: str) -> int:
        """``notifications/resources/updated`` to every session subscribed to ``uri``."""
        sessions = await self.sessions.subscribed_to(uri)
        for session_id in sessions:
            await self.publish(
                session_id, notification_message("notifications/resources/updated", {"uri": uri})
            )
        return len(sessions)

    # -- shared checks --------------------------------------------------------------------------

    @staticmethod
    def _principal(request: Request) -> Principal:
        principal = request.scope.get("state", {}).get("principal")
        if not isinstance(principal, Principal):
            raise RuntimeError("the MCP endpoint must run behind the bearer middleware")
        return principal

    async def _session(self, request: Request) -> SessionState | Response:
        principal = self._principal(request)
        version = request.headers.get(http.VERSION_HEADER)
        if version is not None and not is_supported(version):
            return http.bad_request(f"unsupported {http.VERSION_HEADER}: {version}")
        session_id = request.headers.get(http.SESSION_HEADER)
        if not session_id:
            return http.bad_request(f"{http.SESSION_HEADER} header is required")
        if len(session_id) > 64:
            return http.session_not_found()
        session = await self.sessions.load(session_id, principal)
        return session if session is not None else http.session_not_found()

    # -- POST -----------------------------------------------------------------------------------

    async def post(self, request: Request) -> Response:
        if not http.accepts(request, "application/json"):
            return http.rpc_error(
                406, -32600, "Not Acceptable: Accept must include application/json"
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return http.rpc_error(415, -32600, "Unsupported Media Type: use application/json")
        body = await http.read_body(request, self.options.max_body_bytes)
        if body is None:
            return http.rpc_error(413, -32600, "Payload Too Large")
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return http.rpc_error(400, PARSE_ERROR, "Parse error: body is not valid JSON")
        if isinstance(raw, list):
            return await self._batch(request, raw)
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return JSONResponse(error_message(None, exc), status_code=400)
        principal = self._principal(request)
        if isinstance(message, RpcRequest) and message.method == "initialize":
            return await self._initialize(principal, message.id, message.params)
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        if isinstance(message, Notification):
            await self._notification(found, message)
            return Response(status_code=202)
        if isinstance(message, RpcResponse):
            await self.pending.answer(found.id, message)
            return Response(status_code=202)
        return await self._request(request, principal, found, message)

    async def _request(
        self, request: Request, principal: Principal, session: SessionState, message: RpcRequest
    ) -> Response:
        """Run a request; answer JSON, or SSE as soon as the handler sends anything else."""
        required = self.dispatcher.required_scopes(message)
        if not principal.has_scopes(required):
            return self.forbidden(InsufficientScopeError(required))
        stream = RequestStream(
            log=self.log,
            pending=self.pending,
            session_id=session.id,
            sse_allowed=http.accepts(request, "text/event-stream"),
        )
        task = asyncio.create_task(self._run(Call(message, principal, session, stream), stream))
        self.cancellations.track(request_key(session.id, message.id), task)
        first = await self._first_item(stream)
        if first.final and first.event_id is None and first.message is not None:
            return JSONResponse(first.message, headers={http.SESSION_HEADER: session.id})
        return StreamingResponse(
            drain(
                first,
                stream,
                self.stopping,
                self.options.retry_ms,
                self.options.keepalive_seconds,
                poll_interval=self._stream_poll_interval,
            ),
            media_type="text/event-stream",
            headers=http.sse_headers(session.id),
        )

    async def _first_item(self, stream: RequestStream) -> Item:
        """The first thing to send; a handler silent for too long gets an SSE stream."""
        try:
            return await asyncio.wait_for(stream.queue.get(), self.options.json_wait_seconds)
        except TimeoutError:
            await stream.upgrade()
            return await stream.queue.get()

    async def _batch(self, request: Request, items: list[object]) -> Response:
        """A JSON-RPC batch (protocol 2025-03-26 only): answered as one JSON array."""
        try:
            messages = [parse_message(item) for item in items]
        except JsonRpcError as exc:
            return JSONResponse(error_message(None, exc), status_code=400)
        if not messages or any(
            isinstance(m, RpcRequest) and m.method == "initialize" for m in messages
        ):
            return http.bad_request("a batch must be non-empty and cannot contain initialize")
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        session = found
        if session.protocol_version != "2025-03-26":
            return http.bad_request("JSON-RPC batches exist only in protocol 2025-03-26")
        principal = self._principal(request)
        required = frozenset().union(
            *(self.dispatcher.required_scopes(m) for m in messages if isinstance(m, RpcRequest))
        )
        if not principal.has_scopes(required):
            return self.forbidden(InsufficientScopeError(required))
        replies = []
        for message in messages:
            if isinstance(message, Notification):
                await self._notification(session, message)
            elif isinstance(message, RpcResponse):
                await self.pending.answer(session.id, message)
            else:
                stream = RequestStream(
                    log=self.log, pending=self.pending, session_id=session.id, sse_allowed=False
                )
                await self._run(Call(message, principal, session, stream), stream)
                reply = stream.queue.get_nowait().message
                if reply is not None:
                    replies.append(reply)
        if not replies:
            return Response(status_code=202)
        return JSONResponse(replies, headers={http.SESSION_HEADER: session.id})

    async def _initialize(
        self, principal: Principal, request_id: str | int, params: dict[str, object]
    ) -> Response:
        await self.sessions.purge_expired()
        version, result = self.dispatcher.initialize(params)
        capabilities = params.get("capabilities")
        client_info = params.get("clientInfo")
        session = await self.sessions.create(
            principal,
            version,
            client_info if isinstance(client_info, dict) else {},
            capabilities if isinstance(capabilities, dict) else {},
        )
        return JSONResponse(
            result_message(request_id, result), headers={http.SESSION_HEADER: session.id}
        )

    async def _notification(self, session: SessionState, message: Notification) -> None:
        if message.method == "notifications/initialized":
            if not session.initialized:
                await self.sessions.update(session.id, initialized=True)
        elif message.method == "notifications/cancelled":
            request_id = message.params.get("requestId")
            if isinstance(request_id, str | int) and not isinstance(request_id, bool):
                await self.cancellations.cancel(session.id, request_id)

    async def _run(self, call: Call, stream: RequestStream) -> None:
        """Answer one request on ``stream``; whatever happens, the HTTP response ends."""
        request = call.request
        try:
            try:
                result = await self.dispatcher.handle(call)
                reply = result_message(request.id, result)
            except JsonRpcError as exc:
                reply = error_message(request.id, exc)
            except Exception:
                logger.exception("MCP handler for %s failed", request.method)
                reply = error_message(request.id, JsonRpcError(INTERNAL_ERROR, "Internal error"))
            await stream.send(reply, final=True)
        except asyncio.CancelledError:
            logger.info("MCP request %s (%s) cancelled", request.id, request.method)
            if stream.stream_id is not None and not stream.finished:
                # Tell resuming clients that no response will follow.
                await asyncio.shield(
                    self.log.append(call.session.id, stream.stream_id, "", final=True)
                )
        except Exception:
            logger.exception("could not deliver the response to %s", request.method)
        finally:
            cancelled = JsonRpcError(REQUEST_CANCELLED, "Request cancelled")
            stream.finish(error_message(request.id, cancelled))

    # -- GET ------------------------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        if not http.accepts(request, "text/event-stream"):
            return http.rpc_error(
                406, -32600, "Not Acceptable: Accept must include text/event-stream"
            )
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        session = found
        last = request.headers.get(http.LAST_EVENT_HEADER)
        priming: str | None = None
        if last:
            # A resumption takes the stream over from whichever connection serves it now.
            parsed = parse_event_id(last)
            ownership = None
            if parsed is not None and parsed[0] != CANCEL_STREAM:
                ownership = await claims.resume(self.log, session.id, *parsed)
            if parsed is None or ownership is None:
                return http.bad_request(
                    f"unknown {http.LAST_EVENT_HEADER}: open a new stream without it"
                )
            stream_id, after = parsed
        else:
            # A new standalone stream takes over from the session's older GET streams.
            stream_id = STANDALONE_STREAM
            own = await claims.claim(self.log, session.id, stream_id, None)
            after = own.row
            ownership = claims.Ownership(own.row, own.row)
            priming = sse_event(own.event_id, "", self.options.retry_ms)
        return StreamingResponse(
            replay(
                self.log,
                session.id,
                stream_id,
                after,
                ownership,
                self.stopping,
                poll_interval=self._stream_poll_interval,
                keepalive=self.options.keepalive_seconds,
                retry_ms=self.options.retry_ms,
                priming=priming,
            ),
            media_type="text/event-stream",
            headers=http.sse_headers(session.id),
        )

    @property
    def _stream_poll_interval(self) -> float:
        """How often an idle SSE stream looks for events logged by other workers (at first)."""
        return max(self.options.poll_interval, 0.05)

    # -- DELETE ---------------------------------------------------------------------------------

    async def delete(self, request: Request) -> Response:
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        self.cancellations.cancel_session(found.id)
        await self.sessions.delete(found.id)
        self.bus.notify(self.log.key(found.id, STANDALONE_STREAM))
        return Response(status_code=204)
