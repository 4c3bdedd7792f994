"""The token endpoint's hot reads and writes as prebuilt Core statements (RFC 6749 §5.1, §6).

A refresh grant reads its token row, rotates it and stores two new rows; through the ORM each
of those costs an identity-map load or a unit-of-work flush, several times the statement
itself. Here they run on the session's own connection (same transaction, same locks) from
statements built once, with plain tuples as results: nothing enters the session, so nothing
is flushed or refreshed later. The rows' meaning is that of :mod:`authserver.storage.models`.

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from authserver.storage.models import AccessToken, AuthorizationCode, Grant, RefreshToken, User

_ACCESS = cast(Table, AccessToken.__table__)
_REFRESH = cast(Table, RefreshToken.__table__)
_GRANTS = cast(Table, Grant.__table__)
_USERS = cast(Table, User.__table__)
_CODES = cast(Table, AuthorizationCode.__table__)


class CodeState(NamedTuple):
    """One authorization code row as presented (whatever its state)."""

    code_hash: str
    client_id: str
    subject: str
    redirect_uri: str
    redirect_uri_sent: bool
    scope: str
    resource: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: int
    consumed_at: int | None


class RefreshTokenState(NamedTuple):
    """One refresh token row as presented (whatever its state)."""

    token_hash: str
    grant_id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    expires_at: int
    rotated_at: int | None
    revoked_at: int | None


class UserState(NamedTuple):
    """What issuing needs of a user: whether it is disabled, and its names."""

    disabled: bool
    username: str
    display_name: str | None


class NewGrant(NamedTuple):
    """A grant row about to be stored (columns of :class:`Grant`)."""

    id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    grant_type: str
    code_hash: str | None
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    revoked_reason: str | None = None


class GrantState(NamedTuple):
    """A grant row as read under its lock, and whether its user is live."""

    id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    grant_type: str
    expires_at: int
    revoked_at: int | None
    #: ``users.disabled`` of ``subject``; None when no such user (client credentials grants).
    user_disabled: bool | None
    #: ``users.username`` and ``users.display_name`` of ``subject`` (None: no such user).
    user_username: str | None
    user_display_name: str | None

    @property
    def user_live(self) -> bool:
        """True when ``subject`` is a user and not disabled."""
        return self.user_disabled is not None and not self.user_disabled


_REFRESH_BY_HASH = select(*(_REFRESH.c[name] for name in RefreshTokenState._fields)).where(
    _REFRESH.c.token_hash == bindparam("token_hash")
)
_USER_BY_ID = select(*(_USERS.c[name] for name in UserState._fields)).where(
    _USERS.c.id == bindparam("user_id")
)
_CODE_BY_HASH = select(*(_CODES.c[name] for name in CodeState._fields)).where(
    _CODES.c.code_hash == bindparam("code_hash")
)
_CONSUME = (
    update(_CODES)
    .where(
        _CODES.c.code_hash == bindparam("presented_hash"),
        _CODES.c.consumed_at.is_(None),
        _CODES.c.expires_at > bindparam("now"),
    )
    .values(consumed_at=bindparam("now"))
)
_GRANT_COLUMNS = [name for name in GrantState._fields if not name.startswith("user_")]
_GRANT_FOR_ISSUE = (
    select(
        *(_GRANTS.c[name] for name in _GRANT_COLUMNS),
        select(_USERS.c.disabled).where(_USERS.c.id == bindparam("user_id")).scalar_subquery(),
        # The names of the grant's own subject (the access token's ``sub``), correlated.
        *(
            select(_USERS.c[column]).where(_USERS.c.id == _GRANTS.c.subject).scalar_subquery()
            for column in ("username", "display_name")
        ),
    )
    .where(_GRANTS.c.id == bindparam("grant_id"))
    .with_for_update(key_share=True, of=_GRANTS)
)
_ROTATE = (
    update(_REFRESH)
    .where(
        _REFRESH.c.token_hash == bindparam("presented_hash"),
        _REFRESH.c.rotated_at.is_(None),
        _REFRESH.c.revoked_at.is_(None),
        _REFRESH.c.expires_at > bindparam("now"),
    )
    .values(rotated_at=bindparam("now"))
)
_INSERT_GRANT = insert(_GRANTS)
_INSERT_ACCESS = insert(_ACCESS)
_INSERT_REFRESH = insert(_REFRESH)


def find_user(session: Session, user_id: str) -> UserState | None:
    """The user ``user_id``'s state, or None. On PostgreSQL hold its lock first (S95,
    :func:`authserver.storage.issuance_locks.hold_client_and_user`)."""
    row = session.connection().execute(_USER_BY_ID, {"user_id": user_id}).first()
    return UserState._make(row) if row is not None else None


def find_code(session: Session, code_hash: str) -> CodeState | None:
    """The authorization code row stored as ``code_hash``, or None."""
    row = session.connection().execute(_CODE_BY_HASH, {"code_hash": code_hash}).first()
    return CodeState._make(row) if row is not None else None


def consume_code(session: Session, code_hash: str, now: int) -> bool:
    """Redeem an unconsumed, unexpired code in one atomic ``UPDATE``; False when it was not."""
    result = session.connection().execute(_CONSUME, {"presented_hash": code_hash, "now": now})
    return getattr(result, "rowcount", 0) == 1


def find_refresh_token(session: Session, token_hash: str) -> RefreshTokenState | None:
    """The refresh token row stored as ``token_hash``, or None."""
    row = session.connection().execute(_REFRESH_BY_HASH, {"token_hash": token_hash}).first()
    return RefreshTokenState._make(row) if row is not None else None


def lock_grant(session: Session, grant_id: str, user_id: str) -> GrantState | None:
    """The grant ``grant_id`` row-locked (``FOR NO KEY UPDATE``, S95) with ``user_id``'s
    ``disabled`` flag and names, in one statement; None when there is no such grant.

    On PostgreSQL take the user's advisory lock first: the flag is read by this statement's
    snapshot, which begins after that lock is held.
    """
    row = (
        session.connection()
        .execute(_GRANT_FOR_ISSUE, {"grant_id": grant_id, "user_id": user_id})
        .first()
    )
    return GrantState._make(row) if row is not None else None


def rotate_refresh_token(session: Session, token_hash: str, now: int) -> bool:
    """Retire a live refresh token in one atomic ``UPDATE``; False when it was not live."""
    result = session.connection().execute(_ROTATE, {"presented_hash": token_hash, "now": now})
    return getattr(result, "rowcount", 0) == 1


def insert_grant(session: Session, grant: NewGrant) -> None:
    """Store a new grant (before the tokens that refer to it)."""
    session.connection().execute(_INSERT_GRANT, grant._asdict())


def insert_access_token(session: Session, values: dict[str, Any]) -> None:
    """Store the record of one issued access token (columns of :class:`AccessToken`)."""
    session.connection().execute(_INSERT_ACCESS, values)


def insert_refresh_token(session: Session, values: dict[str, Any]) -> None:
    """Store one refresh token row (columns of :class:`RefreshToken`)."""
    session.connection().execute(_INSERT_REFRESH, values)
