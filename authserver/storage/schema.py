"""Bringing a database to the current schema with the Alembic migrations in ``migrations/``.

The migrations are found through the installed ``migrations`` package, never the working
directory. Upgrades are idempotent and safe when several workers start at once: SQLite takes
its write lock first (``BEGIN IMMEDIATE``), PostgreSQL an advisory transaction lock.

Alembic is imported only when it has work to do: a start-up on a database already at the
packaged head (read from the revision files' ``revision``/``down_revision`` lines and the
``alembic_version`` row) does not load it, which keeps about 10 MB out of every serving worker.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from authserver.storage.crypto import new_id
from authserver.storage.missing_database import missing_database_hint

if TYPE_CHECKING:
    from alembic.config import Config

#: Key of the PostgreSQL advisory lock held while migrating (same as in ``migrations/env.py``).
MIGRATION_LOCK_KEY = 727402
VERSION_TABLE = "alembic_version"
#: A table every Charter schema has; found without ``alembic_version``, the database predates
#: the migrations.
MARKER_TABLE = "oauth_clients"


class DatabaseNotReadyError(RuntimeError):
    """The schema cannot be brought up to date; the message says what the operator must do."""


class UnversionedDatabaseError(DatabaseNotReadyError):
    """The database has Charter's tables but no Alembic revision (made without migrations)."""


class DatabaseNotWritableError(DatabaseNotReadyError):
    """The database can be read but not written (read-only file, folder, mount or role)."""


class MigrationRefusedError(DatabaseNotReadyError):
    """A migration found data it must not change by itself (raised by a revision)."""


def migrations_path() -> Path:
    """Folder of the installed ``migrations`` package (env.py, versions/)."""
    return Path(str(files("migrations")))


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    config.set_main_option("path_separator", "os")
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty or unversioned database)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()


def _run(engine: Engine, revision: str, *, downgrade: bool) -> None:
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        tables = inspect(connection)
        if not tables.has_table(VERSION_TABLE) and tables.has_table(MARKER_TABLE):
            url = engine.url.render_as_string(hide_password=True)
            raise UnversionedDatabaseError(
                f"{url} has Charter tables but no migration revision (it was made without "
                "migrations). If its schema is current, mark it with "
                "`alembic -x database_url=... stamp head`; otherwise start on a new database."
            )
        config.attributes["connection"] = connection
        if downgrade:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to ``revision`` in one transaction, holding the migration lock."""
    _run(engine, revision, downgrade=False)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to ``revision`` (``base`` drops every table) holding the migration lock."""
    _run(engine, revision, downgrade=True)


_REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(?:"([^"]*)"|None)', re.M)


def packaged_head() -> str | None:
    """The single head of the revision files, read without Alembic; None when not one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations_path() / "versions").glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            if value:
                (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_packaged_head(engine: Engine) -> bool:
    """True when the database's one ``alembic_version`` row names :func:`packaged_head`."""
    head = packaged_head()
    if head is None:
        return False
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return False
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()  # noqa: S608
    return [row[0] for row in rows] == [head]


def check_writable(engine: Engine) -> None:
    """Make a table and roll it back: a database Charter cannot write stops the start (S97)."""
    probe = f"charter_write_probe_{new_id()[:12]}"
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(text(f"CREATE TABLE {probe} (x INTEGER)"))
            transaction.rollback()
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=True)
        missing = missing_database_hint(str(exc.orig), engine.url)
        if missing is not None:  # connecting failed: there is nothing to write to yet
            reason = str(exc.orig).strip().splitlines()[0]
            message = f"cannot use the database {url}: {reason}\n  {missing}"
            raise DatabaseNotReadyError(message) from exc
        raise DatabaseNotWritableError(
            f"cannot write to the database {url} ({exc.orig}). Charter needs a database it can "
            "write: check the file's and its folder's permissions and attributes (chattr), the "
            "mount and free space, or the database role's rights."
        ) from exc


def prepare_database(engine: Engine) -> None:
    """Create or upgrade every table of Charter (idempotent; cheap when already at head)."""
    if at_packaged_head(engine):
        return
    head = head_revision()
    if head is not None and current_revision(engine) == head:
        return
    upgrade(engine)
