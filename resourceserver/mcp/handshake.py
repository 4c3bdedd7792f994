"""Serving the handshake era (MCP 2025-03-26 … 2025-11-25): sessions, ``initialize``, GET
streams, server-to-client requests, batches (2025-03-26), DELETE.

MCP 2025-11-25 "Transports" §Streamable HTTP and §Session Management.

The era is stateless in memory apart from running handlers: sessions, the event log and
server-to-client requests live in SQL (:mod:`resourceserver.mcp.sessions`,
:mod:`~resourceserver.mcp.events`, :mod:`~resourceserver.mcp.pending`), so consecutive
requests of a session may reach different workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resourceserver import tracing
from resourceserver.errors import InsufficientScopeError, SignInRequiredError
from resourceserver.mcp import claims, http
from resourceserver.mcp.cancellation import CANCEL_STREAM, Cancellations, request_key
from resourceserver.mcp.context import Notifier
from resourceserver.mcp.dispatch import Call, Dispatcher
from resourceserver.mcp.errors import INTERNAL_ERROR, REQUEST_CANCELLED
from resourceserver.mcp.events import EventLog, SessionGoneError, parse_event_id
from resourceserver.mcp.jsonrpc import (
    JsonRpcError,
    Message,
    Notification,
    error_message,
    parse_message,
    result_message,
)
from resourceserver.mcp.jsonrpc import Request as RpcRequest
from resourceserver.mcp.jsonrpc import Response as RpcResponse
from resourceserver.mcp.live import JsonBody
from resourceserver.mcp.pending import PendingRequests
from resourceserver.mcp.sessions import SessionState, SessionStore
from resourceserver.mcp.sse_response import EventStreamResponse
from resourceserver.mcp.streams import Item, RequestStream, drain, replay, sse_event
from resourceserver.mcp.versions import is_supported
from resourceserver.principal import Principal

logger = logging.getLogger(__name__)

Forbidden = Callable[[InsufficientScopeError], Response]
#: Stream id of the session's standalone GET stream (server-initiated messages).
STANDALONE_STREAM = "standalone"


@dataclass(frozen=True, slots=True)
class StreamTiming:
    """SSE tunables of the handshake era (from the transport options)."""

    retry_ms: int
    poll_interval: float
    json_wait: float
    keepalive: float


class HandshakeEra:
    """Answers handshake-era requests."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        sessions: SessionStore,
        log: EventLog,
        pending: PendingRequests,
        cancellations: Cancellations,
        forbidden: Forbidden,
        notifier: Notifier,
        stopping: asyncio.Event,
        timing: StreamTiming,
    ) -> None:
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.log = log
        self.pending = pending
        self.cancellations = cancellations
        self.forbidden = forbidden
        self.notifier = notifier
        self.stopping = stopping
        self.timing = timing

    async def session(self, request: Request, principal: Principal) -> SessionState | Response:
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

    async def post(self, request: Request, raw: object, principal: Principal) -> Response:
        if isinstance(raw, list):
            return await self._batch(request, raw, principal)
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return JSONResponse(error_message(None, exc), status_code=400)
        if isinstance(message, RpcRequest) and message.method == "initialize":
            return await self._initialize(principal, message.id, message.params)
        found = await self.session(request, principal)
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
        refusal = self.dispatcher.denial(message, principal)
        if refusal is not None:
            return self.forbidden(refusal)
        stream = RequestStream(
            log=self.log,
            pending=self.pending,
            session_id=session.id,
            sse_allowed=http.accepts(request, "text/event-stream"),
        )
        call = Call(message, principal, session, stream, notifier=self.notifier)
        task = asyncio.create_task(self.run(call, stream))
        self.cancellations.track(request_key(session.id, message.id), task)
        first = await self._first_item(stream)
        if first.final and first.event_id is None and first.message is not None:
            return JsonBody(first.message, headers={http.SESSION_HEADER: session.id})
        return EventStreamResponse(
            drain(
                first,
                stream,
                self.stopping,
                self.timing.retry_ms,
                self.timing.keepalive,
            ),
            headers=http.sse_headers(session.id),
        )

    async def _first_item(self, stream: RequestStream) -> Item:
        """The first thing to send; a handler silent for too long gets an SSE stream."""
        try:
            return await stream.first(self.timing.json_wait)
        except TimeoutError:
            await stream.upgrade()
            return await stream.queue.get()

    def _parse_batch(self, items: list[object]) -> list[Message] | Response:
        try:
            messages = [parse_message(item) for item in items]
        except JsonRpcError as exc:
            return JSONResponse(error_message(None, exc), status_code=400)
        if not messages or any(
            isinstance(m, RpcRequest) and m.method == "initialize" for m in messages
        ):
            return http.bad_request("a batch must be non-empty and cannot contain initialize")
        return messages

    async def _batch(self, request: Request, items: list[object], principal: Principal) -> Response:
        """A JSON-RPC batch (protocol 2025-03-26 only): answered as one JSON array."""
        messages = self._parse_batch(items)
        if isinstance(messages, Response):
            return messages
        found = await self.session(request, principal)
        if isinstance(found, Response):
            return found
        if found.protocol_version != "2025-03-26":
            return http.bad_request("JSON-RPC batches exist only in protocol 2025-03-26")
        refusals = [
            self.dispatcher.denial(m, principal) for m in messages if isinstance(m, RpcRequest)
        ]
        refused = [r for r in refusals if r is not None]
        if refused:
            required = frozenset().union(*(r.required for r in refused))
            kind = SignInRequiredError if principal.anonymous else InsufficientScopeError
            return self.forbidden(kind(required))
        replies = [await self._batched(found, principal, message) for message in messages]
        answered = [reply for reply in replies if reply is not None]
        if not answered:
            return Response(status_code=202)
        return JSONResponse(answered, headers={http.SESSION_HEADER: found.id})

    async def _batched(
        self, session: SessionState, principal: Principal, message: Message
    ) -> dict[str, object] | None:
        """One message of a batch; the reply to a request (None for the others)."""
        if isinstance(message, Notification):
            await self._notification(session, message)
            return None
        if isinstance(message, RpcResponse):
            await self.pending.answer(session.id, message)
            return None
        stream = RequestStream(
            log=self.log, pending=self.pending, session_id=session.id, sse_allowed=False
        )
        await self.run(Call(message, principal, session, stream, notifier=self.notifier), stream)
        return stream.queue.get_nowait().message

    async def _initialize(
        self, principal: Principal, request_id: str | int, params: dict[str, object]
    ) -> Response:
        with tracing.span("mcp initialize") as span:
            await self.sessions.purge_expired()
            version, result = self.dispatcher.initialize(params)
            span.set("mcp.method.name", "initialize")
            span.set("charter.mcp.era", "handshake")
            span.set("mcp.protocol.version", version)
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

    async def run(self, call: Call, stream: RequestStream) -> None:
        """Answer one request on ``stream``; whatever happens, the HTTP response ends."""
        request = call.request
        assert call.session is not None  # noqa: S101 - handshake-era calls have a session
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

    async def get(self, request: Request, principal: Principal) -> Response:
        try:
            return await self._get(request, principal)
        except SessionGoneError:
            # Deleted between reading the session and claiming its stream.
            return http.session_not_found()

    async def _get(self, request: Request, principal: Principal) -> Response:
        if not http.accepts(request, "text/event-stream"):
            return http.rpc_error(
                406, -32600, "Not Acceptable: Accept must include text/event-stream"
            )
        found = await self.session(request, principal)
        if isinstance(found, Response):
            return found
        last = request.headers.get(http.LAST_EVENT_HEADER)
        if last:
            return await self._resume(found, last)
        # A new standalone stream takes over from the session's older GET streams.
        own = await claims.claim(self.log, found.id, STANDALONE_STREAM, None)
        ownership = claims.Ownership(own.row, own.row)
        priming = sse_event(own.event_id, "", self.timing.retry_ms)
        return self._replay(found, STANDALONE_STREAM, own.row, ownership, priming)

    async def _resume(self, session: SessionState, last: str) -> Response:
        """A resumption takes the stream over from whichever connection serves it now."""
        parsed = parse_event_id(last)
        ownership = None
        if parsed is not None and parsed[0] != CANCEL_STREAM:
            ownership = await claims.resume(self.log, session.id, *parsed)
        if parsed is None or ownership is None:
            return http.bad_request(
                f"unknown {http.LAST_EVENT_HEADER}: open a new stream without it"
            )
        stream_id, after = parsed
        return self._replay(session, stream_id, after, ownership, None)

    def _replay(
        self,
        session: SessionState,
        stream_id: str,
        after: int,
        ownership: claims.Ownership,
        priming: str | None,
    ) -> Response:
        return EventStreamResponse(
            replay(
                self.log,
                session.id,
                stream_id,
                after,
                ownership,
                self.stopping,
                keepalive=self.timing.keepalive,
                retry_ms=self.timing.retry_ms,
                priming=priming,
            ),
            headers=http.sse_headers(session.id),
        )

    # -- DELETE ---------------------------------------------------------------------------------

    async def delete(self, request: Request, principal: Principal) -> Response:
        found = await self.session(request, principal)
        if isinstance(found, Response):
            return found
        self.cancellations.cancel_session(found.id)
        await self.sessions.delete(found.id)
        self.log.bus.notify(self.log.key(found.id, STANDALONE_STREAM))
        return Response(status_code=204)
