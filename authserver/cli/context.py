"""What every ``charter`` command shares: the group's options, the settings built from them
and the environment, and a ready authorization server context (click 8 contexts).

Every command reads the same settings as the server (:class:`CharterSettings`, environment
``CHARTER_*``); ``--database-url`` and ``--data-dir`` given to the group, then the command's own
options, take precedence. Invalid configuration stops the command with exit code 2 and the
reason, naming the option and variable of each field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from authserver.config.options import describe_validation_error, given_values
from authserver.config.settings import CharterSettings
from authserver.context import AuthServer
from authserver.storage.schema import DatabaseNotReadyError, prepare_database


@dataclass
class CliOptions:
    """The group's options, shared by every sub-command through the click context."""

    database_url: str | None = None
    data_dir: Path | None = None


def build_settings(ctx: click.Context | None = None, **overrides: Any) -> CharterSettings:
    """Settings from the environment, the group's options, then ``overrides`` (given ones)."""
    ctx = ctx or click.get_current_context()
    options = ctx.find_object(CliOptions) or CliOptions()
    values = given_values({"data_dir": options.data_dir, "database_url": options.database_url})
    values.update(given_values(overrides))
    try:
        return CharterSettings(**values)
    except ValidationError as exc:
        reasons = describe_validation_error(CharterSettings, exc)
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
