"""A PostgreSQL database that was never created: what to tell the operator.

PostgreSQL refuses a connection to a database that does not exist with
``FATAL: database "NAME" does not exist`` (SQLSTATE 3D000, *invalid_catalog_name*; PostgreSQL
documentation, Appendix A). Charter's migrations create tables, not the database itself
(creating one needs rights an application's role should not need), so neither
``charter db upgrade`` nor ``charter serve`` can repair it: the operator is given the
``createdb`` command (PostgreSQL client applications) for the configured URL instead.
"""

from __future__ import annotations

import re
import shlex

from sqlalchemy.engine import URL

_MISSING = re.compile(r'database "([^"]+)" does not exist')


def missing_database_hint(reason: str, url: URL | None = None) -> str | None:
    """What to do when ``reason`` (a driver's error text) says the database does not exist;
    None for any other error. With ``url`` the command names its host, port and role."""
    missing = _MISSING.search(reason)
    if missing is None:
        return None
    command = ["createdb"]
    if url is not None:
        for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
            if value is not None:
                command += [flag, str(value)]
    command.append(missing.group(1))
    return (
        f"create the database first (`{shlex.join(command)}`, or CREATE DATABASE as its owner): "
        "`charter db upgrade` creates Charter's tables, not the database"
    )
