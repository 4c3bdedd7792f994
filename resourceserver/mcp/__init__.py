"""The tool API: what tool authors import (the server's internals are in the submodules).

Writing tools (a module named in the deployment's tool list exposes ``registry``, or a
function ``register(registry)``)::

    from typing import Annotated
    from pydantic import BaseModel, Field
    from resourceserver.mcp import Context, Registry, ToolError

    registry = Registry()

    class Forecast(BaseModel):
        city: str
        celsius: float

    @registry.tool(scopes={"weather:read"}, annotations={"readOnlyHint": True})
    async def forecast(
        ctx: Context,
        city: Annotated[str, Field(description="City name, e.g. 'Lyon'")],
        days: Annotated[int, Field(ge=1, le=7)] = 1,
    ) -> Forecast:
        "Tomorrow's temperature for a city."
        await ctx.report_progress(0, 1)
        if city == "Atlantis":
            raise ToolError("Unknown city 'Atlantis'; try a real one")
        return Forecast(city=city, celsius=21.5)

Parameters become ``inputSchema``, the docstring the description, the return annotation
``outputSchema`` (results are validated and sent as ``structuredContent`` plus a text block).
Bad arguments and exceptions become ``isError`` results that say what to fix. ``Context``
offers ``principal``, ``report_progress``, ``log``, ``elicit``, ``sample``, ``list_roots``,
``supports``, ``continue_as_task``, ``notify_resource_updated`` and ``notify_list_changed``;
``elicit``/``sample``/``list_roots`` return :class:`ElicitResult`, :class:`SamplingResult` and
:class:`Root` objects. Every error the MCP side raises on purpose derives from
:class:`McpError`.
"""

from __future__ import annotations

from resourceserver.mcp.content import (
    Audio,
    EmbeddedResource,
    Image,
    PromptMessage,
    ResourceContents,
    ResourceLink,
    Text,
    ToolResult,
)
from resourceserver.mcp.context import Context
from resourceserver.mcp.errors import (
    ClientRequestError,
    DefinitionError,
    JsonRpcError,
    McpError,
    ToolError,
    ToolModuleError,
)
from resourceserver.mcp.registry import Registry, ToolAnnotations, load_tool_modules
from resourceserver.mcp.results import ElicitResult, Root, SamplingResult

__all__ = [
    "Audio",
    "ClientRequestError",
    "Context",
    "DefinitionError",
    "ElicitResult",
    "EmbeddedResource",
    "Image",
    "JsonRpcError",
    "McpError",
    "PromptMessage",
    "Registry",
    "ResourceContents",
    "ResourceLink",
    "Root",
    "SamplingResult",
    "Text",
    "ToolAnnotations",
    "ToolError",
    "ToolModuleError",
    "ToolResult",
    "load_tool_modules",
]
