"""``charter stdio``: the deployment's MCP server for one local client over standard input and
output (MCP "Transports" §stdio, both protocol eras).

The process acts as one local user: a Charter user named with ``--user`` (the subject of its
tokens, so its notes are the same as over HTTP), or else the local principal
``local:<login name>``. It holds every scope the deployment publishes, or those given with
``--scope``; per-tool scopes apply as over HTTP. stdout carries protocol messages only
(SECURITY-CASES S86): ``print`` goes to stderr while it runs, and so do the logs.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any, BinaryIO

import anyio
import click

from authserver.cli.context import build_settings, open_server
from authserver.cli.lookups import require_user
from authserver.cli.tool_import import describe_tool_module_error
from authserver.config.settings import CharterSettings
from authserver.ops.logging_setup import configure_logging

#: Prefix of the subject of the local principal (no Charter user named).
LOCAL_PREFIX = "local:"


def local_subject() -> str:
    """``local:<login name>`` of the user running the process."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return LOCAL_PREFIX + name


def chosen_scopes(settings: CharterSettings, asked: tuple[str, ...]) -> frozenset[str]:
    """Every published scope, or the ``--scope`` values (each must be published)."""
    if not asked:
        return frozenset(settings.scopes_supported)
    unknown = sorted(set(asked) - set(settings.scopes_supported))
    if unknown:
        raise click.UsageError(
            f"unknown scope(s) {', '.join(unknown)}: choose from "
            f"{', '.join(settings.scopes_supported)} (CHARTER_SCOPES_SUPPORTED)"
        )
    return frozenset(asked)


@click.command("stdio")
@click.option(
    "--tools", "tool_modules", multiple=True, metavar="MODULE", help="Tool module (repeatable)."
)
@click.option("--user", "username", metavar="NAME", help="Act as this Charter user.")
@click.option(
    "--scope", "scopes", multiple=True, metavar="SCOPE", help="Hold only these scopes (repeatable)."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning"
)
@click.pass_context
def stdio_command(
    ctx: click.Context,
    /,
    tool_modules: tuple[str, ...],
    username: str | None,
    scopes: tuple[str, ...],
    log_level: str,
) -> None:
    """Serve the MCP tools over stdin/stdout for one local client (logs on stderr)."""
    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but protocol messages on the real stdout
    overrides: dict[str, Any] = {"tools": tool_modules} if tool_modules else {}
    settings = build_settings(ctx, **overrides)
    configure_logging(settings.log_format, log_level.upper())
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from authserver.deployment import TOOL_MODULE_ERRORS, build_registry, build_stdio_bridge

    server = open_server(ctx, **overrides)
    server.keys.ensure_signing_key()
    subject = local_subject()
    if username is not None:
        with server.database.transaction() as session:
            subject = require_user(session, username).id
    try:
        registry = build_registry(server, settings.tools)
    except TOOL_MODULE_ERRORS as exc:
        raise click.UsageError(describe_tool_module_error(exc)) from exc
    granted = chosen_scopes(settings, scopes)

    async def run() -> None:
        write = _writer(protocol_out)
        bridge, deployment = build_stdio_bridge(settings, server, registry, subject, granted, write)
        endpoint = deployment.resource_app.state.mcp_endpoint
        try:
            await bridge.serve(anyio.wrap_file(sys.stdin.buffer))
        finally:
            await endpoint.aclose()

    anyio.run(run)


def _writer(out: BinaryIO) -> Any:
    async def write(data: bytes) -> None:
        await anyio.to_thread.run_sync(_write_flush, out, data)

    return write


def _write_flush(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()
