"""Streamable HTTP: one endpoint for both protocol eras.

MCP 2025-11-25 "Transports" §Streamable HTTP (the handshake era, :mod:`.handshake`) and
MCP 2026-07-28 "Streamable HTTP" and "Versioning and Compatibility" §Backward Compatibility
(the stateless era, :mod:`.modern`): a dual-era server picks the era per request
(:func:`~resourceserver.mcp.versions.is_modern_request`).

The bearer middleware runs first and leaves the :class:`Principal` in
``scope["state"]["principal"]`` (and a ``revalidate`` callable that checks the token again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from resourceserver.errors import InsufficientScopeError
from resourceserver.mcp import http
from resourceserver.mcp.broadcast import Broadcasts
from resourceserver.mcp.bus import Bus
from resourceserver.mcp.cancellation import Cancellations
from resourceserver.mcp.codec import loads_body
from resourceserver.mcp.dispatch import Dispatcher
from resourceserver.mcp.errors import PARSE_ERROR
from resourceserver.mcp.events import EventLog
from resourceserver.mcp.handshake import STANDALONE_STREAM, HandshakeEra, StreamTiming
from resourceserver.mcp.modern import ModernEra, Timing
from resourceserver.mcp.notifier import ChangeNotifier
from resourceserver.mcp.pending import PendingRequests
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.request_state import RequestStateSealer
from resourceserver.mcp.sessions import MAX_SESSIONS_PER_PRINCIPAL, SessionStore
from resourceserver.mcp.streams import dumps
from resourceserver.mcp.task_store import TaskStore
from resourceserver.mcp.tasks import TaskRunner
from resourceserver.mcp.versions import MODERN_VERSIONS, is_modern_request
from resourceserver.mcp.wake import Signal
from resourceserver.mcp.wakeups import PgListener
from resourceserver.principal import Principal
from resourceserver.request_headers import forget_request_headers, request_headers
from resourceserver.storage import Database

__all__ = ["STANDALONE_STREAM", "Forbidden", "McpEndpoint", "TransportOptions"]

logger = logging.getLogger(__name__)

#: Builds the HTTP 403 step-up challenge (RS-auth's ``challenge_response`` bound to settings).
Forbidden = Callable[[InsufficientScopeError], Response]


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
    #: How often the shared watcher looks for events of idle SSE streams written elsewhere.
    stream_watch_interval: float = 0.25
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
    #: 2026-07-28: seconds a task-capable tool call runs inline before it becomes a task.
    task_after_seconds: float = 2.0
    #: 2026-07-28: lifetime of a task (``ttlMs``); it is deleted afterwards.
    task_ttl_seconds: float = 3600.0
    #: 2026-07-28: lifetime of a sealed ``requestState``.
    request_state_ttl_seconds: float = 900.0
    #: 2026-07-28: how often a ``subscriptions/listen`` stream checks its token again.
    listen_revalidate_seconds: float = 1.0
    #: 2026-07-28: how often an idle listening worker looks for changes from other workers.
    broadcast_poll_interval: float = 0.5
    #: 2024-11-05 HTTP+SSE: open ``GET /sse`` streams per signed-in principal (more end the
    #: least recently used; :mod:`resourceserver.mcp.legacy_streams`).
    legacy_streams_per_principal: int = 10
    #: 2024-11-05 HTTP+SSE: open anonymous streams (public tools), all callers together.
    legacy_anonymous_streams: int = 1000


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
        sealer: RequestStateSealer | None = None,
    ) -> None:
        self.options = options or TransportOptions()
        options = self.options
        self.database = database
        self.bus = Bus()
        self.stopping = Signal()  # also wakes idle streams without a task each
        self.sessions = SessionStore(
            database,
            options.session_ttl_seconds,
            max_per_principal=options.max_sessions_per_principal,
        )
        self.log = EventLog(database, self.bus, watch_interval=options.stream_watch_interval)
        self.pending = PendingRequests(
            database,
            self.bus,
            poll_interval=options.poll_interval,
            timeout=options.client_answer_timeout,
        )
        self.dispatcher = Dispatcher(
            registry, self.sessions, base_scope=base_scope, page_size=options.page_size
        )
        #: The scopes every MCP request needs (none when the base scope is empty).
        self._base_scopes = frozenset({base_scope} - {""})
        self.forbidden = forbidden
        self.cancellations = Cancellations(self.log, options.cancel_poll_interval)
        self.broadcasts = Broadcasts(
            database, self.bus, poll_interval=options.broadcast_poll_interval
        )
        self.notifier = ChangeNotifier(
            self.sessions, self.publish, self.broadcasts, self.publish_each
        )
        self.tasks = TaskStore(
            database,
            self.bus,
            self.broadcasts,
            ttl_seconds=options.task_ttl_seconds,
            poll_interval=options.poll_interval,
            answer_timeout=options.client_answer_timeout,
        )
        self.runner = TaskRunner(self.tasks, cancel_interval=options.cancel_poll_interval)
        self.handshake = HandshakeEra(
            dispatcher=self.dispatcher,
            sessions=self.sessions,
            log=self.log,
            pending=self.pending,
            cancellations=self.cancellations,
            forbidden=forbidden,
            notifier=self.notifier,
            stopping=self.stopping,
            timing=StreamTiming(
                options.retry_ms,
                options.poll_interval,
                options.json_wait_seconds,
                options.keepalive_seconds,
            ),
        )
        self.modern = ModernEra(
            dispatcher=self.dispatcher,
            sealer=sealer or RequestStateSealer.ephemeral(options.request_state_ttl_seconds),
            tasks=self.tasks,
            runner=self.runner,
            notifier=self.notifier,
            forbidden=forbidden,
            stopping=self.stopping,
            timing=Timing(
                options.json_wait_seconds,
                options.keepalive_seconds,
                options.task_after_seconds,
                options.listen_revalidate_seconds,
            ),
        )
        self._listener: PgListener | None = None
        self._listening = False

    def ensure_listening(self) -> None:
        """Start forwarding PostgreSQL ``NOTIFY`` wake-ups (once, inside the running loop)."""
        if not self._listening:
            self._listening = True
            self._listener = PgListener.start_for(self.database.engine, self.bus)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ensure_listening()
        request = Request(scope, receive)
        request._headers = request_headers(scope)  # one index of the headers, shared
        principal = self._principal(request)
        base = self._base_scopes
        if not principal.anonymous and not principal.has_scopes(base):
            await self.forbidden(InsufficientScopeError(base))(scope, receive, send)
            return
        modern_header = request.headers.get(http.VERSION_HEADER) in MODERN_VERSIONS
        if request.method == "POST":
            response = await self.post(request, principal)
        elif modern_header and request.method in ("GET", "DELETE"):
            # 2026-07-28 "Streamable HTTP" §Earlier Streamable HTTP Revisions: no GET stream,
            # no session to delete (subscriptions/listen replaces the stream).
            response = http.rpc_error(
                405,
                -32600,
                "Method Not Allowed: protocol 2026-07-28 uses POST only",
                headers={"Allow": "POST"},
            )
        elif request.method == "GET":
            response = await self.handshake.get(request, principal)
        elif request.method == "DELETE":
            response = await self.handshake.delete(request, principal)
        else:
            response = Response(status_code=405, headers={"Allow": "GET, POST, DELETE"})
        forget_request_headers(scope)  # not kept for the life of a stream
        await response(scope, receive, send)

    def drain(self) -> None:
        """End open SSE streams now (call before the server's graceful shutdown).

        Running handlers go on; their events stay in the log, so clients resume elsewhere.
        """
        self.stopping.set()

    async def aclose(self) -> None:
        """Shutdown: end open SSE streams, cancel running handlers and tasks."""
        self.stopping.set()
        if self._listener is not None:
            self._listener.stop()
        await self.log.aclose()
        await self.cancellations.aclose()
        await self.runner.aclose()
        await self.broadcasts.aclose()
        await self.modern.listen_watch.aclose()

    # -- server-initiated messages --------------------------------------------------------------

    async def publish(self, session_id: str, message: dict[str, object]) -> None:
        """Send a message outside any request: on the session's newest standalone GET stream."""
        await self.log.append(session_id, STANDALONE_STREAM, dumps(message), final=False)

    async def publish_each(self, session_ids: Sequence[str], message: dict[str, object]) -> None:
        """:meth:`publish` to many sessions at once (a resource update's subscribers)."""
        await self.log.append_to_each(session_ids, STANDALONE_STREAM, dumps(message))

    async def notify_resource_updated(self, uri: str, *, subject: str | None = None) -> int:
        """``notifications/resources/updated`` to every subscriber of ``uri`` (both eras).

        Returns how many handshake-era sessions were notified.
        """
        return await self.notifier.resource_updated(uri, subject)

    async def notify_list_changed(self, kind: str) -> None:
        """``notifications/{kind}/list_changed`` to modern listeners on every worker."""
        await self.notifier.list_changed(kind)  # type: ignore[arg-type]

    # -- POST -----------------------------------------------------------------------------------

    @staticmethod
    def _principal(request: Request) -> Principal:
        principal = request.scope.get("state", {}).get("principal")
        if not isinstance(principal, Principal):
            raise RuntimeError("the MCP endpoint must run behind the bearer middleware")
        return principal

    async def post(self, request: Request, principal: Principal) -> Response:
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
            raw = loads_body(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return http.rpc_error(400, PARSE_ERROR, "Parse error: body is not valid JSON")
        if is_modern_request(request.headers, raw):
            return await self.modern.post(request, raw, principal)
        return await self.handshake.post(request, raw, principal)
