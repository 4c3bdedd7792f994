"""The tool, prompt and resource registry.

MCP 2025-11-25 "Tools", "Prompts", "Resources", "Completion".

A :class:`Registry` collects typed Python functions with decorators::

    registry = Registry()

    @registry.tool(scopes={"notes:write"})
    async def add(a: int, b: Annotated[int, Field(description="second term")] = 1) -> int:
        "Add two integers."
        return a + b

Parameters become the tool's ``inputSchema``, the docstring its description and the return
annotation its ``outputSchema``. A parameter typed :class:`~resourceserver.mcp.context.Context`
receives the request context.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar, overload

import anyio.to_thread
from pydantic import ValidationError

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
from resourceserver.mcp.jsonrpc import INVALID_PARAMS, RESOURCE_NOT_FOUND, JsonRpcError
from resourceserver.mcp.signature import (
    DefinitionError,
    FunctionShape,
    describe_validation_error,
    inspect_function,
)

JsonObject = dict[str, Any]
logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ToolAnnotations(TypedDict, total=False):
    """Hints about a tool's behaviour ("Tools" §Tool Annotations); clients must not trust them."""

    title: str
    readOnlyHint: bool
    destructiveHint: bool
    idempotentHint: bool
    openWorldHint: bool


class ToolModuleError(ImportError):
    """A tool module named in the configuration cannot be loaded."""


def _description(fn: Callable[..., Any], given: str | None, kind: str, name: str) -> str:
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
        their type is sent.
        """
        try:
            values = self.shape.validate_arguments(arguments)
        except ValidationError as exc:
            return error_result(
                f"Invalid arguments for tool '{self.name}':\n{describe_validation_error(exc)}"
            )
        try:
            value = await _invoke(self.shape, self.fn, _kwargs(self.shape, values, ctx))
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

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "uri": self.uri,
            "name": self.name,
            "description": self.description,
            "mimeType": self.mime_type,
        }
        if self.title:
            out["title"] = self.title
        return out

    async def read(self, uri: str, ctx: Context) -> list[JsonObject]:
        value = await _invoke(self.shape, self.fn, _kwargs(self.shape, {}, ctx))
        return _contents(uri, self.mime_type, value)


def _template_regex(template: str) -> re.Pattern[str]:
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

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "uriTemplate": self.uri_template,
            "name": self.name,
            "description": self.description,
            "mimeType": self.mime_type,
        }
        if self.title:
            out["title"] = self.title
        return out

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


Completer = Callable[[str, str, dict[str, str]], Awaitable[list[str]] | list[str]]


@dataclass
class Registry:
    """Tools, prompts, resources and completions one MCP server offers."""

    name: str = "charter"
    version: str = "0.1.0"
    instructions: str | None = None
    tools: dict[str, Tool] = field(default_factory=dict)
    prompts: dict[str, Prompt] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    templates: dict[str, ResourceTemplate] = field(default_factory=dict)
    completers: dict[tuple[str, str], Completer] = field(default_factory=dict)

    # -- decorators -------------------------------------------------------------------------

    @overload
    def tool(self, fn: F, /) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] = (),
        annotations: ToolAnnotations | None = None,
        input_schema: JsonObject | None = None,
        meta: JsonObject | None = None,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] = (),
        annotations: ToolAnnotations | None = None,
        input_schema: JsonObject | None = None,
        meta: JsonObject | None = None,
    ) -> F | Callable[[F], F]:
        """Register a tool: ``@registry.tool`` or ``@registry.tool(scopes={"notes:write"})``.

        ``scopes`` are needed (besides the base scope) to see and call it. ``input_schema``
        replaces the generated schema in listings (arguments are still validated against the
        function's parameters). Sync functions run in a worker thread.
        """

        def register(fn: F) -> F:
            tool_name = name or fn.__name__
            self._check_name(tool_name, self.tools, "tool")
            self.tools[tool_name] = Tool(
                name=tool_name,
                description=_description(fn, description, "tool", tool_name),
                fn=fn,
                shape=inspect_function(fn, Context, name=tool_name),
                scopes=frozenset(scopes),
                title=title,
                annotations=dict(annotations) if annotations else None,
                input_schema=input_schema,
                meta=meta,
            )
            return fn

        return register(fn) if fn is not None else register

    @overload
    def prompt(self, fn: F, /) -> F: ...

    @overload
    def prompt(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Callable[[F], F]: ...

    def prompt(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a prompt (``@registry.prompt`` or ``@registry.prompt(...)``).

        Its parameters are the prompt's arguments.
        """

        def register(fn: F) -> F:
            prompt_name = name or fn.__name__
            self._check_name(prompt_name, self.prompts, "prompt")
            self.prompts[prompt_name] = Prompt(
                name=prompt_name,
                description=_description(fn, description, "prompt", prompt_name),
                fn=fn,
                shape=inspect_function(fn, Context, name=prompt_name),
                title=title,
            )
            return fn

        return register(fn) if fn is not None else register

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str = "text/plain",
    ) -> Callable[[F], F]:
        """Register a resource, or a resource template when ``uri`` contains ``{variables}``.

        The function returns ``str`` (text), ``bytes`` (blob) or ``ResourceContents``; a
        template's variables are passed as keyword arguments.
        """

        def register(fn: F) -> F:
            label = name or fn.__name__
            text = _description(fn, description, "resource", uri)
            shape = inspect_function(fn, Context, name=label)
            if "{" in uri:
                if uri in self.templates:
                    raise DefinitionError(f"resource template {uri!r} is already registered")
                self.templates[uri] = ResourceTemplate(
                    uri, label, text, mime_type, fn, shape, _template_regex(uri), title
                )
            else:
                if uri in self.resources:
                    raise DefinitionError(f"resource {uri!r} is already registered")
                self.resources[uri] = Resource(uri, label, text, mime_type, fn, shape, title)
            return fn

        return register

    def completion(
        self, *, prompt: str | None = None, template: str | None = None
    ) -> Callable[[F], F]:
        """Register ``fn(argument, value, context_arguments) -> list[str]`` for completions."""
        if (prompt is None) == (template is None):
            raise DefinitionError("completion() needs exactly one of prompt= or template=")
        key = ("ref/prompt", prompt) if prompt is not None else ("ref/resource", str(template))

        def register(fn: F) -> F:
            self.completers[key] = fn
            return fn

        return register

    # -- lookup -------------------------------------------------------------------------------

    def find_resource(self, uri: str) -> tuple[Resource | ResourceTemplate, dict[str, str]]:
        """The resource or template serving ``uri`` (raises -32002)."""
        if uri in self.resources:
            return self.resources[uri], {}
        for template in self.templates.values():
            variables = template.match(uri)
            if variables is not None:
                return template, variables
        raise JsonRpcError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})

    async def complete(
        self, ref_type: str, ref_name: str, argument: str, value: str, context: dict[str, str]
    ) -> list[str]:
        """Suggestions for one argument (empty when no completer is registered)."""
        completer = self.completers.get((ref_type, ref_name))
        if completer is None:
            return []
        values = completer(argument, value, context)
        if inspect.isawaitable(values):
            values = await values
        return list(values)

    # -- composition ----------------------------------------------------------------------------

    def merge(self, other: Registry) -> None:
        """Add everything ``other`` registered (a name defined twice is an error)."""
        for attr in ("tools", "prompts", "resources", "templates", "completers"):
            mine: dict[Any, Any] = getattr(self, attr)
            theirs: dict[Any, Any] = getattr(other, attr)
            clash = sorted(str(key) for key in mine.keys() & theirs.keys())
            if clash:
                raise DefinitionError(f"duplicate {attr} when merging registries: {clash}")
            mine.update(theirs)

    @staticmethod
    def _check_name(name: str, existing: dict[str, Any], kind: str) -> None:
        if not _NAME.match(name):
            raise DefinitionError(f"{kind} name {name!r} must match {_NAME.pattern}")
        if name in existing:
            raise DefinitionError(f"{kind} {name!r} is already registered")


def load_tool_modules(names: Iterable[str], into: Registry | None = None) -> Registry:
    """Import each dotted module; merge its ``registry`` or call its ``register(registry)``."""
    registry = into if into is not None else Registry()
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ToolModuleError(f"cannot import tool module {module_name!r}: {exc}") from exc
        exported = getattr(module, "registry", None)
        register = getattr(module, "register", None)
        if isinstance(exported, Registry):
            registry.merge(exported)
        elif callable(register):
            register(registry)
        else:
            raise ToolModuleError(
                f"tool module {module_name!r} must define `registry = Registry()` "
                "or a function `register(registry)`"
            )
    return registry
