"""``charter``: the administration command line (click).

Every command reads the same settings as the server (:class:`AuthServerSettings`, environment
``CHARTER_*``), with ``--database-url`` and ``--data-dir`` on the group taking precedence.
Sub-command groups live in ``authserver/cli_*.py`` and are loaded when used; ``serve`` comes
from :mod:`authserver.cli.serve` (``serve_command``). :func:`build_settings` and
:func:`open_server` are the shared way to get settings and a ready context from the options.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from authserver.config.settings import AuthServerSettings
from authserver.context import AuthServer
from authserver.storage.schema import DatabaseNotReadyError, prepare_database

#: Sub-command name -> ``module:attribute`` of its click command.
SUBCOMMANDS = {
    "clients": "authserver.cli.clients:clients",
    "consents": "authserver.cli.tokens:consents",
    "db": "authserver.cli.db:db",
    "keys": "authserver.cli.keys:keys",
    "serve": "authserver.cli.serve:serve_command",
    "tokens": "authserver.cli.tokens:tokens",
    "users": "authserver.cli.users:users",
}


@dataclass
class CliOptions:
    """The group's options, shared by every sub-command through the click context."""

    database_url: str | None = None
    data_dir: Path | None = None


def build_settings(ctx: click.Context | None = None, **overrides: Any) -> AuthServerSettings:
    """Settings from the environment, the group's options, then ``overrides`` (not None ones).

    Invalid configuration stops the command with exit code 2 and the reason.
    """
    ctx = ctx or click.get_current_context()
    options = ctx.find_object(CliOptions) or CliOptions()
    values: dict[str, Any] = {}
    if options.data_dir is not None:
        values["data_dir"] = options.data_dir
    if options.database_url:
        values["database_url"] = options.database_url
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return AuthServerSettings(**values)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise click.UsageError(
            f"invalid configuration: {reasons} (check the options and CHARTER_* variables)"
        ) from exc
    except SettingsError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise click.UsageError(
            f"invalid configuration: {exc}{cause} (check the CHARTER_* variables)"
        ) from exc


def describe_database(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def open_server(
    ctx: click.Context | None = None, *, prepare: bool = True, **overrides: Any
) -> AuthServer:
    """A context built from the options (disposed when the command ends).

    With ``prepare`` the schema is brought to the newest migration first (idempotent).
    """
    ctx = ctx or click.get_current_context()
    settings = build_settings(ctx, **overrides)
    try:
        server = AuthServer.build(settings)
    except (ArgumentError, ImportError) as exc:
        raise click.UsageError(
            f"cannot use database URL {describe_database(settings.database_url)}: {exc}"
        ) from exc
    ctx.call_on_close(server.database.dispose)
    if prepare:
        try:
            prepare_database(server.database.engine)
        except DatabaseNotReadyError as exc:
            raise click.ClickException(str(exc)) from exc
    return server


def _serve_unavailable() -> click.Command:
    @click.command("serve", help="Run Charter (not available in this build).")
    def serve() -> None:
        raise click.ClickException(
            "`charter serve` is not available: authserver.cli.serve is missing"
        )

    return serve


class CharterGroup(click.Group):
    """Loads sub-commands on first use and turns database failures into clear errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = SUBCOMMANDS[cmd_name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name and cmd_name == "serve":
                return _serve_unavailable()
            raise
        command = getattr(module, attribute, None)
        if not isinstance(command, click.Command):
            return _serve_unavailable() if cmd_name == "serve" else None
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            options = ctx.find_object(CliOptions) or CliOptions()
            where = options.database_url or "the configured database"
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"database error on {describe_database(where) if options.database_url else where}"
                f": {reason}\n  check --database-url / CHARTER_DATABASE_URL, that the database "
                "is running, and run `charter db upgrade`"
            ) from exc


@click.group(cls=CharterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy URL (env CHARTER_DATABASE_URL); default sqlite:///<data-dir>/charter.db.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the SQLite database and key file (env CHARTER_DATA_DIR).",
)
@click.version_option(package_name="charter-mcp", prog_name="charter")
@click.pass_context
def charter(ctx: click.Context, database_url: str | None, data_dir: Path | None) -> None:
    """Charter: a secured MCP server with its own OAuth 2.1 authorization server."""
    ctx.obj = CliOptions(database_url=database_url, data_dir=data_dir)


def main() -> None:
    """Console-script entry point (``charter``)."""
    charter(prog_name="charter")
