"""What a registry holds: tools, prompts, resources and templates.

MCP 2025-11-25 "Tools" §Tool and §Calling Tools, "Prompts" §Getting a Prompt, "Resources"
§Reading Resources and §Resource Templates. Each definition knows how to list itself and how
to run its function with validated arguments.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import anyio.to_thread
from pydantic import ValidationError

from resourceserver import tracing
from resourceserver.mcp.content import (
    CONTENT_TYPES,
    PromptMessage,
    ResourceContents,
    Text,
    ToolResult,
    error_result,
    json_text,
    to_content_list,
)
from resourceserver.mcp.context import Context, ToolError
from resourceserver.mcp.jsonrpc import INVALID_PARAMS, JsonRpcError
from resourceserver.mcp.routing_headers import ParamHeader
from resourceserver.mcp.signature import (
    DefinitionError,
    FunctionShape,
    describe_validation_error,
)

JsonObject = dict[str, Any]
logger = logging.getLogger(__name__)
#: Whether a tool may run as a task (MCP tasks extension): never, when the client can, or only.
TaskSupport = Literal["optional", "required"]
CacheScope = Literal["public", "private"]


class ToolAnnotations(TypedDict, total=False):
    """Hints about a tool's behaviour ("Tools" §Tool Annotations); clients must not trust them."""

    title: str
    readOnlyHint: bool
    destructiveHint: bool
    idempotentHint: bool
    openWorldHint: bool


def description_of(fn: Callable[..., Any], given: str | None, kind: str, name: str) -> str:
    text = given if given is not None else inspect.getdoc(fn)
    if not text or not text.strip():
        raise DefinitionError(f"{kind} {name!r} needs a description (a docstring or description=)")
    return text.strip()


async def _invoke(shape: FunctionShape, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if shape.is_async:
        return await fn(**kwargs)
    return await anyio.to_thread.run_sync(lambda: fn(**kwargs))


def _kwargs(shape: FunctionShape, values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if shape.context_parameter:
        values[shape.context_parameter] = ctx
    return values


@dataclass(slots=True)
class Tool:
    """A registered tool."""

    name: str
    description: str
    fn: Callable[..., Any]
    shape: FunctionShape
    scopes: frozenset[str] = frozenset()
    title: str | None = None
    annotations: JsonObject | None = None
    input_schema: JsonObject | None = None
    meta: JsonObject | None = None
    task: TaskSupport | None = None
    #: Seconds a task-capable call runs inline before it becomes a task (None: the default).
    task_after: float | None = None
    #: Parameters mirrored into ``Mcp-Param-*`` headers (their ``x-mcp-header``).
    param_headers: tuple[ParamHeader, ...] = ()
    #: Listed to and callable by anonymous callers (no token).
    public: bool = False

    def to_json(self) -> JsonObject:
        """The ``Tool`` object of ``tools/list``."""
        out: JsonObject = {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema or self.shape.input_schema,
        }
        if self.title:
            out["title"] = self.title
        if self.shape.output_schema is not None:
            out["outputSchema"] = self.shape.output_schema
        if self.annotations:
            out["annotations"] = self.annotations
        if self.scopes:
            out["_meta"] = {**(self.meta or {}), "scopes": sorted(self.scopes)}
        elif self.meta:
            out["_meta"] = self.meta
        return out

    async def call(self, arguments: JsonObject, ctx: Context) -> JsonObject:
        """Run the tool; every failure becomes an ``isError`` result.

        Invalid arguments name each argument and what is wrong; ``ToolError`` and
        ``ValueError`` messages are sent as they are; other exceptions are logged and only
        their type is sent. A ``JsonRpcError`` is a protocol error: it is raised on, and the
        request is answered with a JSON-RPC error.
        """
        try:
            values = self.shape.validate_arguments(arguments)
        except ValidationError as exc:
            tracing.note_tool_outcome("validation")
            return error_result(
                f"Invalid arguments for tool '{self.name}':\n{describe_validation_error(exc)}"
            )
        try:
            value = await _invoke(self.shape, self.fn, _kwargs(self.shape, values, ctx))
        except JsonRpcError:
            raise
        except (ToolError, ValueError) as exc:
            return error_result(str(exc) or f"Tool '{self.name}' failed")
        except Exception as exc:
            # Unexpected errors may carry internals (SQL, paths): log them, send only the type.
            logger.exception("tool %s failed", self.name)
            return error_result(
                f"Tool '{self.name}' failed unexpectedly ({type(exc).__name__}); "
                "the error was logged on the server"
            )
        return self._result(value)

    def _result(self, value: Any) -> JsonObject:
        if isinstance(value, ToolResult):
            return value.to_json()
        if self.shape.output is not None:
            try:
                structured = self.shape.structure(value)
            except ValidationError as exc:
                detail = describe_validation_error(exc, noun="field")
                return error_result(
                    f"Tool '{self.name}' returned output that does not match its outputSchema:\n"
                    f"{detail}"
                )
            return {
                "content": [Text(json_text(structured)).to_json()],
                "structuredContent": structured,
                "isError": False,
            }
        blocks = to_content_list(value)
        if blocks is None:
            try:
                blocks = [Text(json_text(value)).to_json()]
            except (TypeError, ValueError):
                return error_result(f"Tool '{self.name}' returned an unsupported value")
        return {"content": blocks, "isError": False}


@dataclass(slots=True)
class Prompt:
    """A registered prompt template."""

    name: str
    description: str
    fn: Callable[..., Any]
    shape: FunctionShape
    title: str | None = None
    #: Listed to and rendered for anonymous callers (no token).
    public: bool = False

    def to_json(self) -> JsonObject:
        """The ``Prompt`` object of ``prompts/list``."""
        schema = self.shape.input_schema
        required = set(schema.get("required", []))
        arguments = []
        for arg_name, prop in schema.get("properties", {}).items():
            argument: JsonObject = {"name": arg_name, "required": arg_name in required}
            if isinstance(prop, dict) and prop.get("description"):
                argument["description"] = prop["description"]
            arguments.append(argument)
        out: JsonObject = {"name": self.name, "description": self.description}
        if arguments:
            out["arguments"] = arguments
        if self.title:
            out["title"] = self.title
        return out

    async def render(self, arguments: JsonObject, ctx: Context) -> JsonObject:
        """The ``prompts/get`` result (bad arguments are -32602)."""
        try:
            values = self.shape.validate_arguments(arguments)
        except ValidationError as exc:
            raise JsonRpcError(
                INVALID_PARAMS,
                f"Invalid arguments for prompt '{self.name}': {describe_validation_error(exc)}",
            ) from exc
        value = await _invoke(self.shape, self.fn, _kwargs(self.shape, values, ctx))
        items = value if isinstance(value, list | tuple) else [value]
        messages = []
        for item in items:
            if isinstance(item, str):
                item = Text(item)
            if isinstance(item, CONTENT_TYPES):
                item = PromptMessage(item)
            if not isinstance(item, PromptMessage):
                raise TypeError(f"prompt '{self.name}' returned {type(item).__name__}")
            messages.append(item.to_json())
        return {"description": self.description, "messages": messages}


def _contents(uri: str, mime_type: str, value: Any) -> list[JsonObject]:
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            item = ResourceContents(uri=uri, mime_type=mime_type, text=item)
        elif isinstance(item, bytes):
            item = ResourceContents(uri=uri, mime_type=mime_type, blob=item)
        if not isinstance(item, ResourceContents):
            raise TypeError(f"resource {uri!r} returned {type(item).__name__}")
        out.append(item.to_json())
    return out


def _listing(uri_key: str, uri: str, item: Resource | ResourceTemplate) -> JsonObject:
    """What a resource and a template list alike, after their URI (or URI template)."""
    out: JsonObject = {
        uri_key: uri,
        "name": item.name,
        "description": item.description,
        "mimeType": item.mime_type,
    }
    if item.title:
        out["title"] = item.title
    return out


@dataclass(slots=True)
class Resource:
    """A registered resource with a fixed URI."""

    uri: str
    name: str
    description: str
    mime_type: str
    fn: Callable[..., Any]
    shape: FunctionShape
    title: str | None = None
    #: Caching hints of ``resources/read`` (MCP 2026-07-28 "Caching").
    cache_ttl_ms: int = 0
    cache_scope: CacheScope = "private"
    #: Listed to and read by anonymous callers (no token).
    public: bool = False

    def to_json(self) -> JsonObject:
        """The ``Resource`` object of ``resources/list``."""
        return _listing("uri", self.uri, self)

    async def read(self, uri: str, ctx: Context) -> list[JsonObject]:
        value = await _invoke(self.shape, self.fn, _kwargs(self.shape, {}, ctx))
        return _contents(uri, self.mime_type, value)


def template_regex(template: str) -> re.Pattern[str]:
    pattern = ""
    for literal, variable in re.findall(r"([^{]*)(?:\{([A-Za-z_][A-Za-z0-9_]*)\})?", template):
        pattern += re.escape(literal)
        if variable:
            pattern += f"(?P<{variable}>[^/]+)"
    return re.compile(f"^{pattern}$")


@dataclass(slots=True)
class ResourceTemplate:
    """A registered resource template (RFC 6570 level 1 variables: ``{id}``)."""

    uri_template: str
    name: str
    description: str
    mime_type: str
    fn: Callable[..., Any]
    shape: FunctionShape
    regex: re.Pattern[str]
    title: str | None = None
    cache_ttl_ms: int = 0
    cache_scope: CacheScope = "private"
    #: Listed to and read by anonymous callers (no token).
    public: bool = False

    def to_json(self) -> JsonObject:
        """The ``ResourceTemplate`` object of ``resources/templates/list``."""
        return _listing("uriTemplate", self.uri_template, self)

    def match(self, uri: str) -> dict[str, str] | None:
        found = self.regex.match(uri)
        return found.groupdict() if found else None

    async def read(self, uri: str, variables: dict[str, str], ctx: Context) -> list[JsonObject]:
        try:
            values = self.shape.validate_arguments(variables)
        except ValidationError as exc:
            raise JsonRpcError(
                INVALID_PARAMS,
                f"Invalid resource URI {uri!r}: {describe_validation_error(exc, noun='variable')}",
            ) from exc
        value = await _invoke(self.shape, self.fn, _kwargs(self.shape, values, ctx))
        return _contents(uri, self.mime_type, value)
