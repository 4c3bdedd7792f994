"""Serving a 2026-07-28 request: stateless, one POST, no session.

MCP 2026-07-28 "Streamable HTTP", "Overview" §_meta and §Error Codes, "Discovery",
"Multi Round-Trip Requests", "Subscriptions", "Caching", and the tasks extension (SEP-2663).

Every request is checked on its own: envelope (``_meta``: ``-32602``, ``-32020``,
``-32022``), routing headers (``-32020``), the method (``-32601``, HTTP 404), the scopes
(HTTP 403), capabilities it needs (``-32021``); each of these errors carries the request's
id and HTTP 400 (404 for an unknown method). Results always carry ``resultType`` and the
server's identity in ``_meta``. The hot path (a ``tools/call`` whose token is in the
verified-token cache) reads no session row and runs no SQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from resourceserver import tracing
from resourceserver.errors import InsufficientScopeError
from resourceserver.mcp.dispatch import Call, Dispatcher, hinted
from resourceserver.mcp.envelope import SERVER_INFO_KEY, Envelope, read_envelope
from resourceserver.mcp.errors import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    MissingClientCapabilityError,
)
from resourceserver.mcp.interrupts import InputRequired, ProtocolFault
from resourceserver.mcp.jsonrpc import Notification, error_message, parse_message, result_message
from resourceserver.mcp.jsonrpc import Request as RpcRequest
from resourceserver.mcp.listen import ListenStream, parse_interests
from resourceserver.mcp.listen_watch import ListenWatch, Revalidate
from resourceserver.mcp.live import JsonBody, LiveResponse, Reply
from resourceserver.mcp.mrtr import AnswerBook, ModernChannel
from resourceserver.mcp.notifier import ChangeNotifier
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.request_state import Binding, RequestStateSealer
from resourceserver.mcp.routing_headers import check_param_headers, check_standard_headers
from resourceserver.mcp.task_store import TaskStore
from resourceserver.mcp.tasks import (
    TASK_METHODS,
    TASKS_EXTENSION,
    TaskMethods,
    TaskQuestions,
    TaskRunner,
)
from resourceserver.mcp.versions import ALL_VERSIONS
from resourceserver.principal import Principal
from resourceserver.records import record

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Forbidden = Callable[[InsufficientScopeError], Response]
#: Methods whose handler may ask the client (``InputRequiredResult``), and what names them.
MRTR_TARGETS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_BAD_REQUEST = {HEADER_MISMATCH, MISSING_REQUIRED_CLIENT_CAPABILITY, UNSUPPORTED_PROTOCOL_VERSION}


def status_for(error: JsonRpcError) -> int:
    """HTTP status of an error raised by a handler (400 for the codes the spec says so)."""
    if error.code == METHOD_NOT_FOUND:
        return 404
    return 400 if error.code in _BAD_REQUEST else 200


def _id_of(raw: Any) -> str | int | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Timing:
    """The modern era's tunables (from the transport options)."""

    json_wait: float
    keepalive: float
    task_after: float
    revalidate: float


@record
class Incoming:
    """One checked modern request."""

    http: Request
    message: RpcRequest
    envelope: Envelope
    principal: Principal


def public_capabilities(capabilities: JsonObject, registry: Registry) -> JsonObject:
    """The capabilities an anonymous caller can use: no tasks, and only the kinds of item
    some of which are public."""
    shown = {key: value for key, value in capabilities.items() if key != "extensions"}
    public = {
        "tools": any(t.public for t in registry.tools.values()),
        "prompts": any(p.public for p in registry.prompts.values()),
        "resources": any(r.public for r in registry.resources.values())
        or any(t.public for t in registry.templates.values()),
    }
    for kind, offered in public.items():
        if not offered:
            shown.pop(kind, None)
    if not (public["prompts"] or public["resources"]):
        shown.pop("completions", None)
    return shown


class ModernEra:
    """Answers 2026-07-28 requests."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        sealer: RequestStateSealer,
        tasks: TaskStore,
        runner: TaskRunner,
        notifier: ChangeNotifier,
        forbidden: Forbidden,
        stopping: asyncio.Event,
        timing: Timing,
    ) -> None:
        self.dispatcher = dispatcher
        self.registry = dispatcher.registry
        self.sealer = sealer
        self.tasks = tasks
        self.runner = runner
        self.task_methods = TaskMethods(tasks, runner)
        self.notifier = notifier
        self.forbidden = forbidden
        self.stopping = stopping
        self.timing = timing
        #: The one task that re-checks every listener's token and drives their keep-alives.
        self.listen_watch = ListenWatch(timing.revalidate, timing.keepalive)

    async def post(self, http: Request, raw: Any, principal: Principal) -> Response:
        """Answer one POSTed JSON-RPC message of the modern era."""
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return JsonBody(error_message(_id_of(raw), exc), 400)
        if isinstance(message, Notification):
            return Response(status_code=202)
        if not isinstance(message, RpcRequest):
            refusal = JsonRpcError(INVALID_REQUEST, "Invalid Request: clients send no responses")
            return JsonBody(error_message(message.id, refusal), 400)
        try:
            envelope = read_envelope(message, http.headers.get("mcp-protocol-version"))
            check_standard_headers(http.headers, message)
            self._check_method(message, envelope)
        except JsonRpcError as exc:
            return JsonBody(error_message(message.id, exc), 404 if exc.code == -32601 else 400)
        denied = self.dispatcher.denial(message, principal)
        if denied is not None:
            return self.forbidden(denied)
        return await self._route(Incoming(http, message, envelope, principal))

    def _check_method(self, message: RpcRequest, envelope: Envelope) -> None:
        method = message.method
        if method in TASK_METHODS:
            if not envelope.declares_extension(TASKS_EXTENSION):
                raise MissingClientCapabilityError({"extensions": {TASKS_EXTENSION: {}}}, "tasks")
            return
        if method in ("server/discover", "subscriptions/listen"):
            return
        if not self.dispatcher.serves(method, modern=True):
            raise JsonRpcError(METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _route(self, incoming: Incoming) -> Response:
        method = incoming.message.method
        if method != "server/discover" and method not in TASK_METHODS:
            return await self._routed(incoming)  # spanned by the dispatcher (a listen stream: HTTP)
        version = incoming.envelope.protocol_version
        with tracing.mcp_span(method, "2026-07-28", version, incoming.message.id):
            return await self._routed(incoming)

    async def _routed(self, incoming: Incoming) -> Response:
        method = incoming.message.method
        try:
            if method == "server/discover":
                return self._reply(incoming, self.discover(incoming.principal))
            if method in TASK_METHODS:
                result = await self.task_methods.handle(
                    method, incoming.principal, incoming.message.params
                )
                return self._reply(incoming, result)
            if method == "subscriptions/listen":
                return await self._listen(incoming)
            return await self._call(incoming)
        except JsonRpcError as exc:
            return JsonBody(error_message(incoming.message.id, exc), 400)

    # -- results --------------------------------------------------------------------------------

    def finish(self, result: JsonObject) -> JsonObject:
        """``result`` with ``resultType`` and the server's identity."""
        result.setdefault("resultType", "complete")
        meta = result.get("_meta")
        result["_meta"] = {
            **(meta if isinstance(meta, dict) else {}),
            SERVER_INFO_KEY: self.dispatcher.server_info(),
        }
        return result

    def _reply(self, incoming: Incoming, result: JsonObject) -> Response:
        return JsonBody(result_message(incoming.message.id, self.finish(result)))

    def discover(self, principal: Principal) -> JsonObject:
        """The ``DiscoverResult`` (MCP 2026-07-28 "Discovery"); an anonymous caller is shown
        only what it may use (S74)."""
        capabilities = self.dispatcher.capabilities(modern=True)
        if principal.anonymous:
            capabilities = public_capabilities(capabilities, self.registry)
        result: JsonObject = {
            "supportedVersions": list(ALL_VERSIONS),
            "capabilities": capabilities,
        }
        if self.registry.instructions:
            result["instructions"] = self.registry.instructions
        return hinted(result, self.registry.list_ttl_ms, "public")

    # -- subscriptions/listen -------------------------------------------------------------------

    async def _listen(self, incoming: Incoming) -> Response:
        wanted = parse_interests(incoming.message.params)
        if wanted.asked_tasks and not incoming.envelope.declares_extension(TASKS_EXTENSION):
            raise MissingClientCapabilityError({"extensions": {TASKS_EXTENSION: {}}}, "tasks")
        revalidate: Revalidate | None = incoming.http.scope.get("state", {}).get("revalidate")
        stream = ListenStream(
            request_id=incoming.message.id,
            principal=incoming.principal,
            broadcasts=self.notifier.broadcasts,
            tasks=self.tasks,
            revalidate=revalidate,
            stopping=self.stopping,
            watch=self.listen_watch,
        )
        await stream.honour(wanted, self.registry)
        return stream.response()

    # -- calls ----------------------------------------------------------------------------------

    async def _call(self, incoming: Incoming) -> Response:
        message = incoming.message
        params = message.params
        book = AnswerBook({}, {})
        binding: Binding | None = None
        task_capable = False
        if message.method in MRTR_TARGETS:
            task_capable = self._check_tool(incoming)
            target = str(params.get(MRTR_TARGETS[message.method], ""))
            arguments = params.get("arguments", {}) if message.method != "resources/read" else {}
            binding = Binding.of(incoming.principal, message.method, target, arguments)
            book = AnswerBook.from_params(params, self.sealer, binding)

        def fallback() -> JsonObject:
            return error_message(message.id, JsonRpcError(INTERNAL_ERROR, "Internal error"))

        live = LiveResponse(
            fallback, json_wait=self.timing.json_wait, keepalive=self.timing.keepalive
        )
        channel = ModernChannel(book, live.notify)
        call = Call(
            message,
            incoming.principal,
            None,
            channel,
            incoming.envelope,
            self.notifier,
            channel.start_task if task_capable else None,
        )
        if task_capable:
            return await live.respond(self._maybe_task(call, book, binding))
        return await live.respond(self._answer(call, book, binding))

    def _check_tool(self, incoming: Incoming) -> bool:
        """Header and task checks of a ``tools/call``; True when it may become a task."""
        params = incoming.message.params
        tool = self.registry.tools.get(str(params.get("name")))
        if incoming.message.method != "tools/call" or tool is None:
            return False
        arguments = params.get("arguments")
        if isinstance(arguments, dict):
            check_param_headers(incoming.http.headers, tool.param_headers, arguments)
        declared = incoming.envelope.declares_extension(TASKS_EXTENSION)
        if tool.task == "required" and not declared:
            raise MissingClientCapabilityError(
                {"extensions": {TASKS_EXTENSION: {}}}, f"tool '{tool.name}' runs only as a task"
            )
        return tool.task is not None and declared

    async def _answer(self, call: Call, book: AnswerBook, binding: Binding | None) -> Reply:
        return await self._settle(call, book, binding, self.dispatcher.handle(call))

    async def _settle(
        self, call: Call, book: AnswerBook, binding: Binding | None, work: Awaitable[JsonObject]
    ) -> Reply:
        """The response to ``call`` once ``work`` ends: its result, input required, or an error."""
        request_id = call.request.id
        try:
            result = await work
        except InputRequired:
            if binding is None:
                raise
            return result_message(
                request_id, self.finish(book.input_required(self.sealer, binding))
            ), 200
        except ProtocolFault as fault:
            return error_message(request_id, fault.error), status_for(fault.error)
        except JsonRpcError as exc:
            return error_message(request_id, exc), status_for(exc)
        return result_message(request_id, self.finish(result)), 200

    async def _maybe_task(self, call: Call, book: AnswerBook, binding: Binding | None) -> Reply:
        """Run a task-capable tool inline; answer with a task when it wants one or runs long."""
        channel = call.channel
        assert isinstance(channel, ModernChannel)  # noqa: S101 - built by _call
        handler = asyncio.ensure_future(self.dispatcher.handle(call))
        wanted = asyncio.ensure_future(channel.task_wanted.wait())
        tool = self.registry.tools[str(call.request.params.get("name"))]
        delay = tool.task_after if tool.task_after is not None else self.timing.task_after
        try:
            await asyncio.wait({handler, wanted}, timeout=delay, return_when="FIRST_COMPLETED")
        except BaseException:
            handler.cancel()
            raise
        finally:
            wanted.cancel()
        if handler.done():
            return await self._settle(call, book, binding, handler)
        channel.task_wanted.set()
        try:
            task = await self.tasks.create(call.principal, tool.name, channel.status_message)
        except BaseException:
            handler.cancel()
            raise
        channel.enter_task(TaskQuestions(self.tasks, task.id))
        self.runner.adopt(task.id, handler)
        created = {"resultType": "task", **task.to_json(detailed=False)}
        return result_message(call.request.id, self.finish(created)), 200
