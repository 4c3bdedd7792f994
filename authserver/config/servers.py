"""More MCP servers in one deployment, declared in a small TOML file (``CHARTER_MCP_SERVERS_FILE``).

Besides the default server at ``CHARTER_RESOURCE_URL``, each ``[[server]]`` table declares one
MCP server with its own path, name, tool modules and scopes::

    [[server]]
    name = "Echo tools"
    path = "/echo/mcp"
    tools = ["echo_tools"]
    scopes = ["echo:write"]

Its resource URL (the audience of its tokens, RFC 8707) is the issuer followed by the path;
it has its own protected resource metadata (RFC 9728) naming its scopes (the base scope
``mcp`` is always among them). ``builtin = true`` adds the built-in tools to its registry.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: The scope every MCP request needs (the resource server's ``base_scope``).
BASE_SCOPE = "mcp"
#: RFC 6749 §3.3 scope-token characters.
_SCOPE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


class McpServerConfig(BaseModel):
    """One ``[[server]]`` of the servers file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    path: str
    tools: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    builtin: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value or "?" in value:
            raise ValueError(f"path {value!r} must start with / and not end with /")
        if value.startswith("/.well-known"):
            raise ValueError("path must not be under /.well-known")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for scope in value:
            if not scope or set(scope) - _SCOPE_CHARS:
                raise ValueError(f"scope {scope!r} is not a valid scope token")
        return value


def load_servers(path: Path, *, base_scope: str, taken: set[str]) -> tuple[McpServerConfig, ...]:
    """The servers the file declares (raises ValueError with the reason)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the MCP servers file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the MCP servers file {path} is not valid TOML: {exc}") from exc
    tables = document.get("server", [])
    if not isinstance(tables, list) or set(document) - {"server"}:
        raise ValueError(f"{path}: declare servers as [[server]] tables only")
    servers: list[McpServerConfig] = []
    paths = set(taken)
    for index, table in enumerate(tables, start=1):
        try:
            server = McpServerConfig.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"{path}: server {index}: {problems}") from exc
        if server.path in paths:
            raise ValueError(f"{path}: server {index}: path {server.path} is already served")
        paths.add(server.path)
        scopes = tuple(dict.fromkeys([base_scope, *server.scopes])) if base_scope else server.scopes
        servers.append(server.model_copy(update={"scopes": scopes}))
    return tuple(servers)
