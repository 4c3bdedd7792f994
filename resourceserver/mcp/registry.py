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
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from resourceserver.mcp.context import Context
from resourceserver.mcp.definitions import (
    CacheScope,
    Prompt,
    Resource,
    ResourceTemplate,
    TaskSupport,
    Tool,
    ToolAnnotations,
    description_of,
    template_regex,
)
from resourceserver.mcp.errors import DefinitionError, ToolModuleError
from resourceserver.mcp.jsonrpc import RESOURCE_NOT_FOUND, JsonRpcError
from resourceserver.mcp.routing_headers import param_headers_of
from resourceserver.mcp.signature import inspect_function

__all__ = [
    "Prompt",
    "Registry",
    "Resource",
    "ResourceTemplate",
    "Tool",
    "ToolAnnotations",
    "ToolModuleError",
    "load_tool_modules",
]

JsonObject = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


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
    #: How long clients may cache the tool, prompt and resource lists and ``server/discover``
    #: (``ttlMs``, MCP 2026-07-28 "Caching"), milliseconds.
    list_ttl_ms: int = 60_000
    #: Bumped by every registration and merge: cached lists (:mod:`.list_cache`) are rebuilt.
    revision: int = field(default=0, init=False, repr=False, compare=False)

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
        task: TaskSupport | None = None,
        task_after: float | None = None,
        public: bool = False,
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
        task: TaskSupport | None = None,
        task_after: float | None = None,
        public: bool = False,
    ) -> F | Callable[[F], F]:
        """Register a tool: ``@registry.tool`` or ``@registry.tool(scopes={"notes:write"})``.

        ``scopes`` are needed (besides the base scope) to see and call it. ``input_schema``
        replaces the generated schema in listings (arguments are still validated against the
        function's parameters). Sync functions run in a worker thread. ``task`` lets the tool
        run as a task for 2026-07-28 clients that declare the tasks extension (``"required"``:
        only for them); it becomes one at ``ctx.continue_as_task()`` or after ``task_after``
        seconds. A parameter whose schema has ``x-mcp-header`` is mirrored into an
        ``Mcp-Param-*`` header, which is checked. A ``public`` tool is listed to and callable
        by anonymous callers (no token); it cannot need scopes or run as a task.
        """
        scope_set = frozenset(scopes)

        def register(fn: F) -> F:
            tool_name = name or fn.__name__
            self._check_name(tool_name, self.tools, "tool")
            shape = inspect_function(fn, Context, name=tool_name)
            if task not in (None, "optional", "required"):
                raise DefinitionError(f"tool {tool_name!r}: task must be 'optional' or 'required'")
            if public and (scope_set or task is not None):
                raise DefinitionError(f"tool {tool_name!r}: a public tool has no scopes or task")
            if input_schema is not None:
                _check_input_schema(tool_name, input_schema)
            try:
                headers = param_headers_of(input_schema or shape.input_schema)
            except DefinitionError as exc:
                raise DefinitionError(f"tool {tool_name!r}: {exc}") from exc
            self.revision += 1
            self.tools[tool_name] = Tool(
                name=tool_name,
                description=description_of(fn, description, "tool", tool_name),
                fn=fn,
                shape=shape,
                scopes=scope_set,
                title=title,
                annotations=dict(annotations) if annotations else None,
                input_schema=input_schema,
                meta=meta,
                task=task,
                task_after=task_after,
                param_headers=headers,
                public=public,
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
        public: bool = False,
    ) -> Callable[[F], F]: ...

    def prompt(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        public: bool = False,
    ) -> F | Callable[[F], F]:
        """Register a prompt (``@registry.prompt`` or ``@registry.prompt(...)``).

        Its parameters are the prompt's arguments; a ``public`` one is offered to anonymous
        callers too.
        """

        def register(fn: F) -> F:
            prompt_name = name or fn.__name__
            self._check_name(prompt_name, self.prompts, "prompt")
            self.revision += 1
            self.prompts[prompt_name] = Prompt(
                name=prompt_name,
                description=description_of(fn, description, "prompt", prompt_name),
                fn=fn,
                shape=inspect_function(fn, Context, name=prompt_name),
                title=title,
                public=public,
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
        cache_ttl_ms: int = 0,
        cache_scope: CacheScope = "private",
        public: bool = False,
    ) -> Callable[[F], F]:
        """Register a resource, or a resource template when ``uri`` contains ``{variables}``.

        The function returns ``str`` (text), ``bytes`` (blob) or ``ResourceContents``; a
        template's variables are passed as keyword arguments. ``cache_ttl_ms`` and
        ``cache_scope`` are the caching hints of its ``resources/read`` results: by default
        not cached, and never shared between users unless ``cache_scope="public"``. A
        ``public`` resource is listed to and read by anonymous callers too.
        """
        if cache_ttl_ms < 0 or cache_scope not in ("public", "private"):
            raise DefinitionError("cache_ttl_ms must be >= 0 and cache_scope public or private")

        def register(fn: F) -> F:
            label = name or fn.__name__
            text = description_of(fn, description, "resource", uri)
            shape = inspect_function(fn, Context, name=label)
            if "{" in uri:
                if uri in self.templates:
                    raise DefinitionError(f"resource template {uri!r} is already registered")
                self.revision += 1
                self.templates[uri] = ResourceTemplate(
                    uri,
                    label,
                    text,
                    mime_type,
                    fn,
                    shape,
                    template_regex(uri),
                    title,
                    cache_ttl_ms,
                    cache_scope,
                    public,
                )
            else:
                if uri in self.resources:
                    raise DefinitionError(f"resource {uri!r} is already registered")
                self.revision += 1
                self.resources[uri] = Resource(
                    uri, label, text, mime_type, fn, shape, title, cache_ttl_ms, cache_scope, public
                )
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
            self.revision += 1
            self.completers[key] = fn
            return fn

        return register

    # -- lookup -------------------------------------------------------------------------------

    def tools_vary_by_scope(self, base_scope: str) -> bool:
        """True when callers with different scopes see different tools (S71: not shareable);
        with public tools, anonymous callers see fewer than signed-in ones (S83)."""
        return any(tool.scopes - {base_scope} for tool in self.tools.values()) or (
            self.has_public() and not all(tool.public for tool in self.tools.values())
        )

    def has_public(self) -> bool:
        """True when some tool, prompt or resource is public: anonymous callers are served."""
        items: list[Any] = [
            *self.tools.values(),
            *self.prompts.values(),
            *self.resources.values(),
            *self.templates.values(),
        ]
        return any(item.public for item in items)

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
        self.revision += 1

    @staticmethod
    def _check_name(name: str, existing: dict[str, Any], kind: str) -> None:
        if not _NAME.match(name):
            raise DefinitionError(f"{kind} name {name!r} must match {_NAME.pattern}")
        if name in existing:
            raise DefinitionError(f"{kind} {name!r} is already registered")


#: JSON Schema dialects a tool's own ``input_schema`` may name (MCP 2026-07-28 "Overview"
#: §JSON Schema Usage: 2020-12 is the default and required; draft-07 is also understood).
SCHEMA_DIALECTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
    }
)


def _check_input_schema(name: str, schema: JsonObject) -> None:
    """An ``inputSchema`` is an object schema in a dialect this server knows."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise DefinitionError(
            f"tool {name!r}: input_schema must be an object schema (type: object)"
        )
    dialect = schema.get("$schema")
    if dialect is not None and dialect not in SCHEMA_DIALECTS:
        raise DefinitionError(
            f"tool {name!r}: unsupported JSON Schema dialect {dialect!r}; use 2020-12 "
            "(the default when $schema is absent) or draft-07"
        )


def load_tool_modules(names: Iterable[str], into: Registry | None = None) -> Registry:
    """Import each dotted module; merge its ``registry`` or call its ``register(registry)``."""
    registry = into if into is not None else Registry()
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ToolModuleError(
                f"cannot import tool module {module_name!r}: {exc}", name=module_name
            ) from exc
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
