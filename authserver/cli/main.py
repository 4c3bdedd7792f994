"""``charter``: the administration command line (click).

The group takes ``--database-url`` and ``--data-dir`` (generated from the settings model, like
every ``charter serve`` option) and registers its command groups explicitly, one module each:
``users``, ``clients``, ``idps``, ``tokens``, ``consents``, ``keys``, ``audit``, ``db``,
``serve`` and ``stdio``. What they share (settings, an opened server, lookups, output) is in
:mod:`authserver.cli.context`,
:mod:`authserver.cli.lookups` and :mod:`authserver.cli.output`. Database failures become one
clear error (exit 1) instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from authserver.cli.audit import audit
from authserver.cli.clients import clients
from authserver.cli.consents import consents
from authserver.cli.context import CliOptions, describe_database
from authserver.cli.db import db
from authserver.cli.idps import idps
from authserver.cli.keys import keys
from authserver.cli.serve import serve_command
from authserver.cli.stdio import stdio_command
from authserver.cli.tokens import tokens
from authserver.cli.users import users
from authserver.config.options import settings_options
from authserver.config.settings import CharterSettings
from authserver.storage.missing_database import missing_database_hint

#: Options of the ``charter`` group itself (every command reads them).
GROUP_SETTINGS = ("database_url", "data_dir")


class CharterGroup(click.Group):
    """Turns database failures into clear errors."""

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


for command in (
    users,
    clients,
    idps,
    tokens,
    consents,
    keys,
    audit,
    db,
    serve_command,
    stdio_command,
):
    charter.add_command(command)


def main() -> None:
    """Console-script entry point (``charter``)."""
    charter(prog_name="charter")
