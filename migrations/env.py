"""Alembic environment of Charter (both packages' tables; online mode only).

The target metadata is the authorization server's ``Base.metadata`` plus the resource server's
``resourceserver.storage.metadata`` when that module is importable. The connection comes from
``config.attributes["connection"]`` (set by :func:`authserver.storage.schema.prepare_database`);
otherwise an engine is made from ``-x database_url=...``, ``config.attributes["database_url"]``,
``sqlalchemy.url`` or the ``CHARTER_DATABASE_URL`` / ``CHARTER_DATA_DIR`` settings. SQLite uses
batch mode for ALTERs.
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import Connection, MetaData, text

from authserver.config.settings import CharterSettings
from authserver.storage.db import make_engine
from authserver.storage.models import Base

#: Key of the PostgreSQL advisory lock that serialises concurrent upgrades.
MIGRATION_LOCK_KEY = 727402


def target_metadata() -> list[MetaData]:
    """Every ``MetaData`` whose tables the migrations manage."""
    found = [Base.metadata]
    try:
        from resourceserver.storage import metadata as resource_metadata
    except ImportError:  # pragma: no cover - the resource server is part of the distribution
        return found
    found.append(resource_metadata)
    return found


def database_url() -> str:
    """The URL to migrate when no connection was handed in."""
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("database_url")
    url = url or config.attributes.get("database_url")
    url = url or config.get_main_option("sqlalchemy.url") or ""
    return url or CharterSettings().database_url


def run_with(connection: Connection) -> None:
    """Run the migrations on ``connection`` (inside the caller's transaction, if any)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the handed-in connection, or open one and hold the migration lock while upgrading."""
    handed_in = context.config.attributes.get("connection")
    if handed_in is not None:
        run_with(handed_in)
        return
    engine = make_engine(database_url(), pool_size=1)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            run_with(connection)
    finally:
        engine.dispose()


if context.config.config_file_name is not None:
    logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    raise SystemExit("Charter's migrations run online only: give a database URL, not --sql")
run_migrations_online()
