"""Finding the rows a ``charter`` command names: users by name (any case) or id, clients by id.
A name that finds nothing stops the command with exit code 1 and a hint of what to list.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.accounts.users import find_user
from authserver.cli.output import fail
from authserver.storage.models import Client, User


def usernames(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """User id -> username for the ids given (missing ids are left out)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all()
    return {row.id: row.username for row in rows}


def resolve_subject(session: Session, user: str) -> str:
    """The subject (user id) of a username (any case) or id; exit 1 when unknown."""
    found = find_user(session, user)
    if found is None:
        fail(f"no user {user!r}", "list the users with `charter users list`")
    return found.id


def require_client(session: Session, client_id: str) -> str:
    """``client_id`` when such a client exists; exit 1 otherwise."""
    if session.get(Client, client_id) is None:
        fail(f"no client {client_id!r}", "list the clients with `charter clients list`")
    return client_id


def find_client(session: Session, client_id: str) -> Client:
    """The client ``client_id``; exit 1 when unknown."""
    client = session.get(Client, client_id)
    if client is None:
        fail(f"no client {client_id!r}", "list the clients with `charter clients list`")
    return client


def require_user(session: Session, username: str) -> User:
    """The user called ``username`` (case-insensitively) or with that id; exit 1 when none."""
    user = find_user(session, username)
    if user is None:
        fail(f"no user {username!r}", "list the users with `charter users list`")
    return user
