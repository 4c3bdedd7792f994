"""``charter``: the administration command line (click).

The group takes ``--database-url`` and ``--data-dir`` (generated from the settings model, like
every ``charter serve`` option) and registers its command groups explicitly, one module each:
``users``, ``clients``, ``idps``, ``tokens``, ``consents``, ``keys``, ``audit``, ``db``,
``serve`` and ``stdio``. A command's module is imported when that command runs (or ``--help``
lists them), so that ``charter serve`` does not keep the admin commands and what only they need
(password hashing, the identity-provider client, Alembic) in a serving worker's memory. What
they share (settings, an opened server, lookups, output) is in
:mod:`authserver.cli.context`,
:mod:`authserver.cli.lookups` and :mod:`authserver.cli.output`. Database failures become one
clear error (exit 1) instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from authserver.cli.context import CliOptions, describe_database
from authserver.config.options import settings_options
from authserver.config.settings import CharterSettings
from authserver.storage.missing_database import missing_database_hint

#: Options of the ``charter`` group itself (every command reads them).
GROUP_SETTINGS = ("database_url", "data_dir")
#: Every command of the group: its name and where it is defined (``module:attribute``),
#: imported on first use (:meth:`CharterGroup.get_command`).
COMMANDS = {
    "users": "authserver.cli.users:users",
    "clients": "authserver.cli.clients:clients",
    "idps": "authserver.cli.idps:idps",
    "tokens": "authserver.cli.tokens:tokens",
    "consents": "authserver.cli.consents:consents",
    "keys": "authserver.cli.keys:keys",
    "audit": "authserver.cli.audit:audit",
    "db": "authserver.cli.db:db",
    "serve": "authserver.cli.serve:serve_command",
    "stdio": "authserver.cli.stdio:stdio_command",
}


class CharterGroup(click.Group):
    """Imports each command on first use (:data:`COMMANDS`) and turns database failures into
    clear errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):  # pragma: no cover - a wrong table
                raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            options = ctx.find_object(CliOptions) or CliOptions()
            url = options.database_url or os.environ.get("CHARTER_DATABASE_URL")
            where = describe_database(url) if url else "the configured database"
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"database error on {where}: {reason}\n  {database_hint(reason, url)}"
            ) from exc


def database_hint(reason: str, url: str | None = None) -> str:
    """What the operator should do about a database error ``reason`` (on ``url``)."""
    try:
        parsed = make_url(url) if url else None
    except ArgumentError:
        parsed = None
    missing = missing_database_hint(reason, parsed)
    if missing is not None:
        return missing
    return (
        "check --database-url / CHARTER_DATABASE_URL, that the database is running, and run "
        "`charter db upgrade`"
    )


@click.group(cls=CharterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@settings_options(CharterSettings, GROUP_SETTINGS)
@click.version_option(package_name="charter-mcp", prog_name="charter")
@click.pass_context
def charter(ctx: click.Context, database_url: str | None, data_dir: Path | None) -> None:
    """Charter: a secured MCP server with its own OAuth 2.1 authorization server."""
    ctx.obj = CliOptions(database_url=database_url, data_dir=data_dir)


def main() -> None:
    """Console-script entry point (``charter``)."""
    charter(prog_name="charter")
