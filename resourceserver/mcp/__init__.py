"""The MCP server: tool API, protocol dispatch and the Streamable HTTP transport.

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
offers ``principal``, ``report_progress``, ``log``, ``elicit``, ``sample`` and ``list_roots``.
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
from resourceserver.mcp.context import ClientRequestError, Context, ToolError
from resourceserver.mcp.registry import (
    Registry,
    ToolAnnotations,
    ToolModuleError,
    load_tool_modules,
)
from resourceserver.mcp.signature import DefinitionError
from resourceserver.mcp.transport import McpEndpoint, TransportOptions

__all__ = [
    "Audio",
    "ClientRequestError",
    "Context",
    "DefinitionError",
    "EmbeddedResource",
    "Image",
    "McpEndpoint",
    "PromptMessage",
    "Registry",
    "ResourceContents",
    "ResourceLink",
    "Text",
    "ToolAnnotations",
    "ToolError",
    "ToolModuleError",
    "ToolResult",
    "TransportOptions",
    "load_tool_modules",
]
