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
done there.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authserver.storage.models import Client, Grant, User

#: First key of the advisory locks (two-int form, apart from the migration lock's one-bigint form).
CLIENT_LOCK_SPACE = 95_001
USER_LOCK_SPACE = 95_002


def _lock_key(value: str) -> int:
    """A signed 32-bit key for ``value`` (collisions only make two ids share a lock)."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big", signed=True)


def _advisory_lock(session: Session, space: int, value: str, *, shared: bool) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    session.execute(select(lock(space, _lock_key(value))))


def hold_client(session: Session, client_id: str) -> bool:
    """Hold the client against revocation; True when it exists and is enabled."""
    _advisory_lock(session, CLIENT_LOCK_SPACE, client_id, shared=True)
    disabled = session.execute(
        select(Client.disabled).where(Client.client_id == client_id)
    ).scalar_one_or_none()
    return disabled is False


def hold_user(session: Session, user_id: str) -> bool:
    """Hold the user against revocation (after the client); True when it exists and is enabled."""
    _advisory_lock(session, USER_LOCK_SPACE, user_id, shared=True)
    disabled = session.execute(select(User.disabled).where(User.id == user_id)).scalar_one_or_none()
    return disabled is False


def hold_grant(session: Session, grant_id: str) -> Grant | None:
    """Lock the grant row (after the client and user) and read its current state."""
    return session.scalars(
        select(Grant)
        .where(Grant.id == grant_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()


def lock_client_for_revocation(session: Session, client_id: str) -> None:
    """Wait for the client's issuers in flight and keep new ones out until commit."""
    _advisory_lock(session, CLIENT_LOCK_SPACE, client_id, shared=False)


def lock_user_for_revocation(session: Session, user_id: str) -> None:
    """Wait for the user's issuers in flight and keep new ones out until commit."""
    _advisory_lock(session, USER_LOCK_SPACE, user_id, shared=False)
