"""MCP method dispatch: one small handler per method, for both protocol eras.

MCP 2025-11-25 and 2026-07-28 "Server Features" and "Utilities"; 2026-07-28 "Caching" (list
and read results carry ``ttlMs``/``cacheScope``), "Resources" §Error Handling (an unknown
resource is ``-32602`` with ``data.uri``; it was ``-32002``) and "Overview" (``ping``,
``logging/setLevel`` and ``resources/(un)subscribe`` exist only in the handshake era).

Unknown tools and prompts are protocol errors (-32602); everything that goes wrong inside a tool,
including invalid arguments, is a tool result with ``isError: true`` ("Tools" §Error Handling).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from resourceserver import tracing
from resourceserver.errors import InsufficientScopeError
from resourceserver.mcp import access
from resourceserver.mcp.context import LOG_LEVELS, Channel, Context, Notifier
from resourceserver.mcp.definitions import Resource, ResourceTemplate
from resourceserver.mcp.envelope import Envelope
from resourceserver.mcp.jsonrpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    JsonRpcError,
    Request,
)
from resourceserver.mcp.list_cache import ListCache
from resourceserver.mcp.registry import Registry
from resourceserver.mcp.sessions import SessionState, SessionStore
from resourceserver.mcp.versions import negotiate
from resourceserver.metrics import (
    MCP_REQUESTS,
    TOOL_CALLS,
    TOOL_SECONDS,
    UNKNOWN_TOOL,
    labelled,
)
from resourceserver.principal import Principal
from resourceserver.records import record

JsonObject = dict[str, Any]
T = TypeVar("T")
Handler = Callable[["Call"], Awaitable[JsonObject]]


@record
class Call:
    """One request being handled: a session's (handshake era) or an envelope's (2026-07-28)."""

    request: Request
    principal: Principal
    session: SessionState | None
    channel: Channel
    envelope: Envelope | None = None
    notifier: Notifier | None = None
    task_starter: Callable[[str | None], Awaitable[None]] | None = None

    def context(self) -> Context:
        if self.envelope is not None:
            return Context(
                principal=self.principal,
                session_id=None,
                channel=self.channel,
                request_id=self.request.id,
                progress_token=self.request.progress_token,
                protocol_version=self.envelope.protocol_version,
                client_capabilities=self.envelope.client_capabilities,
                log_level=self.envelope.log_level,
                logs_without_level=False,
                modern=True,
                notifier=self.notifier,
                task_starter=self.task_starter,
            )
        assert self.session is not None  # noqa: S101 - a handshake-era call has a session
        return Context(
            principal=self.principal,
            session_id=self.session.id,
            channel=self.channel,
            request_id=self.request.id,
            progress_token=self.request.progress_token,
            protocol_version=self.session.protocol_version,
            client_capabilities=self.session.client_capabilities,
            log_level=self.session.log_level,
            notifier=self.notifier,
        )


def _string(params: JsonObject, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise JsonRpcError(INVALID_PARAMS, f"Invalid params: '{key}' must be a non-empty string")
    return value


def _object(params: JsonObject, key: str) -> JsonObject:
    value = params.get(key) or {}
    if not isinstance(value, dict):
        raise JsonRpcError(INVALID_PARAMS, f"Invalid params: '{key}' must be an object")
    return value


def paginate(items: Sequence[T], cursor: Any, page_size: int) -> tuple[Sequence[T], str | None]:
    """One page of ``items`` and the opaque cursor of the next page."""
    start = 0
    if cursor is not None:
        try:
            decoded = base64.urlsafe_b64decode(str(cursor).encode()).decode()
            if not decoded.startswith("o:"):
                raise ValueError(decoded)
            start = int(decoded[2:])
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise JsonRpcError(INVALID_PARAMS, "Invalid params: unknown cursor") from exc
    end = start + page_size
    following = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if end < len(items) else None
    return items[start:end], following


def hinted(result: JsonObject, ttl_ms: int, scope: str) -> JsonObject:
    """``result`` with the 2026-07-28 caching hints."""
    result["ttlMs"] = max(0, int(ttl_ms))
    result["cacheScope"] = scope
    return result


def _version(call: Call) -> str | None:
    """The protocol version the request is spoken in."""
    if call.envelope is not None:
        return call.envelope.protocol_version
    return call.session.protocol_version if call.session is not None else None


class Dispatcher:
    """Answers MCP requests from a :class:`Registry`."""

    def __init__(
        self, registry: Registry, sessions: SessionStore, *, base_scope: str, page_size: int = 50
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.base_scope = base_scope
        self.page_size = page_size
        self._lists = ListCache(registry)
        shared: dict[str, Handler] = {
            "tools/call": self._tools_call,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
        }
        self._methods: dict[str, Handler] = {
            **shared,
            "ping": self._ping,
            "tools/list": self._tools_list,
            "prompts/list": self._prompts_list,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "resources/read": self._resources_read,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "logging/setLevel": self._set_level,
        }
        self._modern: dict[str, Handler] = {
            **shared,
            "tools/list": self._cached(self._tools_list, self._tools_scope),
            "prompts/list": self._cached(self._prompts_list, self._other_scope),
            "resources/list": self._cached(self._resources_list, self._other_scope),
            "resources/templates/list": self._cached(self._templates_list, self._other_scope),
            "resources/read": self._modern_read,
        }

    # -- lifecycle and authorization ------------------------------------------------------------

    def capabilities(self, *, modern: bool) -> JsonObject:
        """What this server offers (2026-07-28 adds list changes and ``extensions``)."""
        if not modern:
            return {
                "tools": {"listChanged": False},
                "prompts": {"listChanged": False},
                "resources": {"subscribe": True, "listChanged": False},
                "logging": {},
                "completions": {},
            }
        return {
            "tools": {"listChanged": True},
            "prompts": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "logging": {},
            "completions": {},
            "extensions": {"io.modelcontextprotocol/tasks": {}},
        }

    def server_info(self) -> JsonObject:
        return {"name": self.registry.name, "version": self.registry.version}

    def initialize(self, params: JsonObject) -> tuple[str, JsonObject]:
        """Negotiate the version and build the ``InitializeResult``."""
        labelled(MCP_REQUESTS, "initialize", "handshake").inc()
        version = negotiate(params.get("protocolVersion"))
        result: JsonObject = {
            "protocolVersion": version,
            "capabilities": self.capabilities(modern=False),
            "serverInfo": self.server_info(),
        }
        if self.registry.instructions:
            result["instructions"] = self.registry.instructions
        return version, result

    def required_scopes(self, request: Request) -> frozenset[str]:
        """Scopes a signed-in caller must hold for this request (checked before it runs)."""
        return access.required_scopes(self.registry, self.base_scope, request)

    def denial(self, request: Request, principal: Principal) -> InsufficientScopeError | None:
        """Why ``principal`` may not send ``request``: 403 for missing scopes, 401 (sign in)
        for an anonymous caller asking for something not public; None when it may."""
        return access.denial(self.registry, self.base_scope, request, principal)

    def serves(self, method: str, *, modern: bool) -> bool:
        """True when ``method`` exists in that era."""
        return method in (self._modern if modern else self._methods)

    async def handle(self, call: Call) -> JsonObject:
        """The ``result`` of a request (raises JsonRpcError)."""
        methods = self._methods if call.envelope is None else self._modern
        era = "handshake" if call.envelope is None else "2026-07-28"
        method = call.request.method if call.request.method in methods else "other"
        labelled(MCP_REQUESTS, method, era).inc()
        handler = methods.get(call.request.method)
        with tracing.mcp_span(method, era, _version(call), call.request.id) as span:
            if handler is None:
                span.set("rpc.jsonrpc.error_code", METHOD_NOT_FOUND)
                raise JsonRpcError(METHOD_NOT_FOUND, f"Method not found: {call.request.method}")
            try:
                return await handler(call)
            except JsonRpcError as exc:
                span.set("rpc.jsonrpc.error_code", exc.code)
                span.fail()
                raise

    def _page(self, call: Call, key: str, kind: str) -> JsonObject:
        """The ``*/list`` result holding the page of the registry's items of ``kind`` visible
        to the caller that the request's cursor asks for (their JSON objects are cached per
        registry change and kind of caller, :mod:`.list_cache`)."""
        items = self._lists.visible(kind, call.principal)
        page, following = paginate(items, call.request.params.get("cursor"), self.page_size)
        result: JsonObject = {key: list(page)}
        if following:
            result["nextCursor"] = following
        return result

    def _cached(self, handler: Handler, scope: Callable[[], str]) -> Handler:
        async def with_hints(call: Call) -> JsonObject:
            return hinted(await handler(call), self.registry.list_ttl_ms, scope())

        return with_hints

    def _other_scope(self) -> str:
        """Prompt and resource lists differ between anonymous and signed-in callers when some
        are public (S83)."""
        return "private" if self._lists.has_public() else "public"

    def _tools_scope(self) -> str:
        return "private" if self._lists.tools_vary_by_scope(self.base_scope) else "public"

    # -- utilities -------------------------------------------------------------------------------

    async def _ping(self, call: Call) -> JsonObject:
        return {}

    async def _set_level(self, call: Call) -> JsonObject:
        level = call.request.params.get("level")
        if level not in LOG_LEVELS:
            raise JsonRpcError(
                INVALID_PARAMS, f"Invalid params: 'level' must be one of {LOG_LEVELS}"
            )
        assert call.session is not None  # noqa: S101 - handshake era only
        await self.sessions.update(call.session.id, log_level=level)
        return {}

    async def _complete(self, call: Call) -> JsonObject:
        ref = _object(call.request.params, "ref")
        argument = _object(call.request.params, "argument")
        ref_type = ref.get("type")
        ref_name = ref.get("name") if ref_type == "ref/prompt" else ref.get("uri")
        if ref_type not in ("ref/prompt", "ref/resource") or not isinstance(ref_name, str):
            raise JsonRpcError(
                INVALID_PARAMS, "Invalid params: 'ref' must name a prompt or resource"
            )
        if ref_type == "ref/prompt" and ref_name not in self.registry.prompts:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown prompt: {ref_name}")
        context_args = _object(_object(call.request.params, "context"), "arguments")
        values = await self.registry.complete(
            ref_type,
            ref_name,
            str(argument.get("name", "")),
            str(argument.get("value", "")),
            {str(k): str(v) for k, v in context_args.items()},
        )
        return {
            "completion": {
                "values": values[:100],
                "total": len(values),
                "hasMore": len(values) > 100,
            }
        }

    # -- tools -------------------------------------------------------------------------------------

    async def _tools_list(self, call: Call) -> JsonObject:
        return self._page(call, "tools", "tools")

    async def _tools_call(self, call: Call) -> JsonObject:
        name = _string(call.request.params, "name")
        tool = self.registry.tools.get(name)
        if tool is None:
            labelled(TOOL_CALLS, UNKNOWN_TOOL, "unknown_tool").inc()
            raise JsonRpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        arguments = _object(call.request.params, "arguments")
        outcome = "raised"
        started = time.perf_counter()
        with tracing.tool_span(tool.name, call.request.params.get("_meta")) as span:
            try:
                result = await tool.call(arguments, call.context())
                outcome = "error" if result.get("isError") else "ok"
                return result
            finally:
                span.setdefault(tracing.TOOL_OUTCOME, outcome)
                labelled(TOOL_CALLS, tool.name, outcome).inc()
                labelled(TOOL_SECONDS, tool.name).observe(time.perf_counter() - started)

    # -- prompts -----------------------------------------------------------------------------------

    async def _prompts_list(self, call: Call) -> JsonObject:
        return self._page(call, "prompts", "prompts")

    async def _prompts_get(self, call: Call) -> JsonObject:
        name = _string(call.request.params, "name")
        prompt = self.registry.prompts.get(name)
        if prompt is None:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown prompt: {name}")
        return await prompt.render(_object(call.request.params, "arguments"), call.context())

    # -- resources ---------------------------------------------------------------------------------

    async def _resources_list(self, call: Call) -> JsonObject:
        return self._page(call, "resources", "resources")

    async def _templates_list(self, call: Call) -> JsonObject:
        return self._page(call, "resourceTemplates", "templates")

    async def _read(self, call: Call) -> tuple[Resource | ResourceTemplate, JsonObject]:
        uri = _string(call.request.params, "uri")
        found, variables = self.registry.find_resource(uri)
        if isinstance(found, ResourceTemplate):
            return found, {"contents": await found.read(uri, variables, call.context())}
        return found, {"contents": await found.read(uri, call.context())}

    async def _resources_read(self, call: Call) -> JsonObject:
        return (await self._read(call))[1]

    async def _modern_read(self, call: Call) -> JsonObject:
        try:
            resource, result = await self._read(call)
        except JsonRpcError as exc:
            if exc.code != RESOURCE_NOT_FOUND:
                raise
            raise JsonRpcError(INVALID_PARAMS, "Resource not found", exc.data) from exc
        return hinted(result, resource.cache_ttl_ms, resource.cache_scope)

    async def _subscribe(self, call: Call) -> JsonObject:
        uri = _string(call.request.params, "uri")
        assert call.session is not None  # noqa: S101 - handshake era only
        await self.sessions.subscribe(call.session.id, uri, True)
        return {}

    async def _unsubscribe(self, call: Call) -> JsonObject:
        uri = _string(call.request.params, "uri")
        assert call.session is not None  # noqa: S101 - handshake era only
        await self.sessions.subscribe(call.session.id, uri, False)
        return {}
