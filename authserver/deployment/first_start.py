"""The first start of a deployment (DESIGN.md "One composition root"): the database checked
writable (S97) and migrated, a signing key ensured, and on a database without users the first
``admin`` created with a random one-time password that the first browser login must change."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from authserver.accounts.users import new_user
from authserver.context import AuthServer
from authserver.storage.models import User
from authserver.storage.schema import check_writable, prepare_database

logger = logging.getLogger("charter.deployment")

FIRST_ADMIN_USERNAME = "admin"
#: Bytes of entropy of the first admin's one-time password (shown once, never logged).
FIRST_PASSWORD_BYTES = 18


@dataclass(frozen=True)
class FirstStart:
    """What :func:`initialize` did; ``admin_password`` is set only when it created the admin."""

    admin_username: str | None
    admin_password: str | None
    created_signing_key: bool


def initialize(server: AuthServer, *, create_admin: bool = True) -> FirstStart:
    """Check that the database can be written (S97), migrate it, ensure a signing key, and
    create the first admin when needed.

    Idempotent and safe when several processes start at once (migrations and key creation hold
    a lock; the admin's unique username settles a race).
    """
    check_writable(server.database.engine)
    prepare_database(server.database.engine)
    created_key = server.keys.ensure_signing_key()
    server.keys.verify_decryptable()
    if not create_admin:
        return FirstStart(None, None, created_key)
    password = _create_first_admin(server)
    username = FIRST_ADMIN_USERNAME if password is not None else None
    return FirstStart(username, password, created_key)


def _create_first_admin(server: AuthServer) -> str | None:
    """Create ``admin`` with a random one-time password (it must be changed at the first
    browser login) when there are no users; return the password."""
    with server.database.transaction() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    password = secrets.token_urlsafe(FIRST_PASSWORD_BYTES)
    admin = new_user(
        server, FIRST_ADMIN_USERNAME, password, is_admin=True, must_change_password=True
    )
    try:
        with server.database.transaction() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return None
            session.add(admin)
    except IntegrityError:
        return None  # another process created it first
    logger.info("created the first user %r", FIRST_ADMIN_USERNAME)
    return password
