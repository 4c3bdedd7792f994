"""Ordering token issuance against revocation (RFC 7009 §2, RFC 9700 §4.14.2; S95).

A revocation by grant, client or user must leave no token of what it revoked, even while the
client refreshes or redeems a code at that very moment. On PostgreSQL (READ COMMITTED) the
revocation's ``UPDATE … WHERE grant/client/user`` cannot see rows that a concurrent issuing
transaction inserts, so both sides lock in one order:

* issuing takes the client's lock shared, then the user's lock shared, then the grant row
  (``FOR NO KEY UPDATE``), and reads their state again under the locks;
* revoking a client or a user first takes its lock exclusively; revoking a grant updates the
  grant row (which conflicts with the grant lock).

Either the issuer commits first (the revocation's later statements then see its tokens) or the
revocation does (the issuer, once it has the lock, finds the client disabled, the grant revoked
or the code withdrawn). Client and user locks are transaction-scoped advisory locks keyed by a
hash of the id: issuers of one client share them, and a waiting revocation queues new issuers
behind it (shared row locks would let a busy client's traffic starve the revocation). SQLite
takes its write lock at ``BEGIN IMMEDIATE``, which already serialises the two; nothing more is
done there, and a row read earlier in the same transaction is as current as a second read.

Statements are few on the hot path (a refresh grant): on PostgreSQL the client's state is read
in the statement that takes the user's lock (its snapshot begins after the client's lock is
held), and the user's state in the one that locks the grant
(:func:`authserver.storage.token_rows.lock_grant`).
"""

from __future__ import annotations

import hashlib
from typing import cast

from sqlalchemy import ColumnElement, Integer, Table, bindparam, func, literal_column, select
from sqlalchemy.orm import Session

from authserver.storage.client_rows import ClientState, read_by
from authserver.storage.models import Client

#: First key of the advisory locks (two-int form, apart from the migration lock's one-bigint form).
CLIENT_LOCK_SPACE = 95_001
USER_LOCK_SPACE = 95_002

_CLIENTS = cast(Table, Client.__table__)
_SPACE = bindparam("space", type_=Integer)
_KEY = bindparam("key", type_=Integer)
# Built once: every grant on PostgreSQL runs them (building a statement costs more than it).
_LOCK_SHARED = select(func.pg_advisory_xact_lock_shared(_SPACE, _KEY))
_LOCK_EXCLUSIVE = select(func.pg_advisory_xact_lock(_SPACE, _KEY))
_CLIENT_DISABLED = select(_CLIENTS.c.disabled).where(_CLIENTS.c.client_id == bindparam("client_id"))
_CLIENT_DISABLED_LOCKING_USER = select(
    _CLIENT_DISABLED.scalar_subquery(), func.pg_advisory_xact_lock_shared(_SPACE, _KEY)
)


def _lock_key(value: str) -> int:
    """A signed 32-bit key for ``value`` (collisions only make two ids share a lock)."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big", signed=True)


def lock_key(value: str) -> int:
    """The advisory lock key of the client or user id ``value`` (PostgreSQL)."""
    return _lock_key(value)


def sql_lock_key(column: str) -> ColumnElement[int]:
    """:func:`lock_key` of the text ``column`` (a qualified column name), computed by
    PostgreSQL: the first four bytes of its UTF-8 SHA-256 as a signed big-endian integer. Lets
    a statement lock a user it has just read (:mod:`authserver.storage.grant_prelude`)."""
    return literal_column(
        f"('x' || left(encode(sha256(convert_to({column}, 'UTF8')), 'hex'), 8))::bit(32)::integer",
        Integer,
    )


def shared_lock(space: int, key: ColumnElement[int] | int) -> ColumnElement[object]:
    """``pg_advisory_xact_lock_shared(space, key)`` as a column of a statement."""
    return func.pg_advisory_xact_lock_shared(space, key)


def is_postgresql(session: Session) -> bool:
    """True when ``session`` talks to PostgreSQL (where issuing takes advisory locks)."""
    return session.get_bind().dialect.name == "postgresql"


def _advisory_lock(session: Session, space: int, value: str, *, shared: bool) -> None:
    if not is_postgresql(session):
        return
    statement = _LOCK_SHARED if shared else _LOCK_EXCLUSIVE
    session.connection().execute(statement, {"space": space, "key": _lock_key(value)})


def _read_in_this_transaction(session: Session, client_id: str, loaded: ClientState | None) -> bool:
    """True when ``loaded`` is ``client_id``'s row as ``session`` read it, on SQLite.

    Every session of :meth:`authserver.storage.db.Database.transaction` is one transaction,
    begun ``IMMEDIATE`` before its first read: no other writer can have committed since.
    """
    return (
        loaded is not None
        and loaded.client_id == client_id
        and read_by(session, loaded)
        and session.get_bind().dialect.name == "sqlite"
    )


def hold_client(session: Session, client_id: str, *, loaded: ClientState | None = None) -> bool:
    """Hold the client against revocation; True when it exists and is enabled.

    ``loaded`` is the client's row as this transaction read it (client authentication): on
    SQLite it answers without a second read; elsewhere the row is read again under the lock.
    """
    if _read_in_this_transaction(session, client_id, loaded):
        return loaded is not None and loaded.disabled is False
    _advisory_lock(session, CLIENT_LOCK_SPACE, client_id, shared=True)
    disabled = (
        session.connection()
        .execute(_CLIENT_DISABLED, {"client_id": client_id})
        .scalar_one_or_none()
    )
    return disabled is False


def hold_client_and_user(
    session: Session, client_id: str, user_id: str, *, loaded: ClientState | None = None
) -> bool:
    """Hold the client, then the user, against revocation; True when the client exists and is
    enabled. The user's state is the caller's to read, after this: with the grant's row lock
    (:func:`authserver.storage.token_rows.lock_grant`) or alone (``find_user``).

    On PostgreSQL: the client's lock, then one statement reading the client's state (its
    snapshot begins after that lock is held) and taking the user's lock.
    """
    if not is_postgresql(session):
        return hold_client(session, client_id, loaded=loaded)
    _advisory_lock(session, CLIENT_LOCK_SPACE, client_id, shared=True)
    disabled = (
        session.connection()
        .execute(
            _CLIENT_DISABLED_LOCKING_USER,
            {"client_id": client_id, "space": USER_LOCK_SPACE, "key": _lock_key(user_id)},
        )
        .scalar()
    )
    return disabled is False


def lock_client_for_revocation(session: Session, client_id: str) -> None:
    """Wait for the client's issuers in flight and keep new ones out until commit."""
    _advisory_lock(session, CLIENT_LOCK_SPACE, client_id, shared=False)


def lock_user_for_revocation(session: Session, user_id: str) -> None:
    """Wait for the user's issuers in flight and keep new ones out until commit."""
    _advisory_lock(session, USER_LOCK_SPACE, user_id, shared=False)
