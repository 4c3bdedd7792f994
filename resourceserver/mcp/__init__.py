"""The MCP server: tool API, protocol dispatch and the Streamable HTTP transport."""

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
