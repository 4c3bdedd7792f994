"""``charter db``: the schema's Alembic revision and upgrading it."""

from __future__ import annotations

import click

from authserver.cli.context import describe_database, open_server
from authserver.cli.output import emit_result, json_option
from authserver.storage.schema import current_revision, head_revision, prepare_database


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option
def upgrade(as_json: bool) -> None:
    """Create the tables or bring them to the newest migration (safe to repeat)."""
    server = open_server(prepare=False)
    before = current_revision(server.database.engine)
    prepare_database(server.database.engine)
    after = current_revision(server.database.engine)
    where = describe_database(server.settings.database_url)
    message = (
        f"{where} already at revision {after}"
        if before == after
        else f"upgraded {where} from {before or 'an empty database'} to revision {after}"
    )
    emit_result(message, {"database": where, "from": before, "to": after}, as_json=as_json)


@db.command("current")
@json_option
def current(as_json: bool) -> None:
    """Show the database's revision and the newest one."""
    server = open_server(prepare=False)
    revision = current_revision(server.database.engine)
    head = head_revision()
    up_to_date = revision == head
    where = describe_database(server.settings.database_url)
    if up_to_date:
        message = f"{where}: revision {revision} (up to date)"
    else:
        message = (
            f"{where}: revision {revision or 'none'}, newest is {head}; "
            "run `charter db upgrade` (or start `charter serve`)"
        )
    emit_result(
        message,
        {"database": where, "current": revision, "head": head, "up_to_date": up_to_date},
        as_json=as_json,
    )
