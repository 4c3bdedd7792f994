"""The tool API tool authors import is small and pinned; server internals are not in it; every
error the resource server raises on purpose derives from one root, ``McpError``; no import
cycle between the resource server's modules."""

from __future__ import annotations

import subprocess
import sys

import resourceserver.mcp as tool_api
from resourceserver.errors import InsufficientScopeError, InvalidTokenError, McpError
from resourceserver.jwks import KeySourceError
from resourceserver.mcp.errors import (
    HeaderMismatchError,
    MissingClientCapabilityError,
    UnsupportedVersionError,
)
from resourceserver.mcp.request_state import RequestStateError
from resourceserver.mcp.task_store import TaskNotFoundError

PUBLIC = {
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
}


def test_the_tool_api_is_small_and_holds_no_server_internals() -> None:
    assert set(tool_api.__all__) == PUBLIC
    for internal in ("McpEndpoint", "TransportOptions", "Dispatcher", "SessionStore"):
        assert internal not in tool_api.__all__
        assert not hasattr(tool_api, internal)


def test_one_root_for_every_error() -> None:
    for error in (
        tool_api.ToolError,
        tool_api.ClientRequestError,
        tool_api.JsonRpcError,
        tool_api.DefinitionError,
        tool_api.ToolModuleError,
        HeaderMismatchError,
        MissingClientCapabilityError,
        UnsupportedVersionError,
        RequestStateError,
        TaskNotFoundError,
        InvalidTokenError,
        InsufficientScopeError,
        KeySourceError,
    ):
        assert issubclass(error, McpError), error
    # The built-in bases they had before stay.
    assert issubclass(tool_api.DefinitionError, TypeError)
    assert issubclass(tool_api.ToolModuleError, ImportError)


def test_every_resource_server_module_imports_on_its_own() -> None:
    """A module that only works after another one was imported hides an import cycle."""
    modules = [
        "resourceserver.mcp.events",
        "resourceserver.mcp.wakeups",
        "resourceserver.mcp.bus",
        "resourceserver.mcp.transport",
        "resourceserver.mcp.modern",
        "resourceserver.mcp.handshake",
        "resourceserver.mcp.context",
        "resourceserver.mcp",
    ]
    for module in modules:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (module, done.stderr)
