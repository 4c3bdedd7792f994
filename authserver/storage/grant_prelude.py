"""The first statement of a refresh or authorization code grant: the client's row and the
presented refresh token's or code's row in one read, and on PostgreSQL the S95 locks (RFC 6749
§2.3, §4.1.3, §6; RFC 9700 §4.14.2).

Client authentication reads the client row, then the grant reads the refresh token's (or
code's) row, then (PostgreSQL) takes the client's and the user's shared locks: four statements,
each a round trip on PostgreSQL. Here one ``SELECT`` of the client ``LEFT JOIN`` the credential
does the two reads, and on PostgreSQL it also takes the client's lock and then the lock of the
user the credential belongs to (:func:`authserver.storage.issuance_locks.sql_lock_key`: the
same key as :func:`~authserver.storage.issuance_locks.lock_key`, computed from the row just
read). The columns of a target list are evaluated in order, so the order of the locks is that
of :mod:`authserver.storage.issuance_locks`: client, then user, then (later) the grant.

What the locks guard is read by a *later* statement, whose snapshot begins once they are held:
the client's ``disabled`` flag and the user's state are read again by
:mod:`authserver.storage.refresh_rotation` (refresh) or
:mod:`authserver.storage.code_redemption` (code). The client row read
here serves authentication only (secret, methods, grant types), as the separate read before the
lock did.

The client row is remembered as read by this session
(:func:`authserver.storage.client_rows.remember`), so that on SQLite
:func:`~authserver.storage.issuance_locks.hold_client` needs no second read (the transaction
began ``IMMEDIATE``). No caching across requests: every grant reads the rows it uses in its
own transaction.

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

from typing import Any, Generic, NamedTuple, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.orm import Session

from authserver.storage.client_rows import ClientState, remember
from authserver.storage.issuance_locks import (
    CLIENT_LOCK_SPACE,
    USER_LOCK_SPACE,
    is_postgresql,
    lock_key,
    shared_lock,
    sql_lock_key,
)
from authserver.storage.models import AuthorizationCode, Client, RefreshToken
from authserver.storage.token_rows import CodeState, RefreshTokenState

_CLIENTS = cast(Table, Client.__table__)
_REFRESH = cast(Table, RefreshToken.__table__)
_CODES = cast(Table, AuthorizationCode.__table__)
_CLIENT_COLUMNS = [_CLIENTS.c[name] for name in ClientState._fields]
_CLIENT_WIDTH = len(ClientState._fields)

_State = TypeVar("_State", RefreshTokenState, CodeState)


def _statement(table: Table, fields: tuple[str, ...], *, locking: bool) -> Select[Any]:
    """The client ``LEFT JOIN`` the credential row of ``table`` (keyed by its hash)."""
    key = table.primary_key.columns.values()[0]
    columns: list[ColumnElement[Any]] = [
        *_CLIENT_COLUMNS,
        *(table.c[name].label("credential_" + name) for name in fields),
    ]
    if locking:
        columns += [
            shared_lock(CLIENT_LOCK_SPACE, bindparam("client_key")),
            shared_lock(USER_LOCK_SPACE, sql_lock_key(f"{table.name}.subject")),
        ]
    return (
        select(*columns)
        .select_from(_CLIENTS.outerjoin(table, key == bindparam("credential_hash")))
        .where(_CLIENTS.c.client_id == bindparam("client_id"))
    )


_STATEMENTS = {
    (kind, locking): _statement(table, fields, locking=locking)
    for kind, table, fields in (
        ("refresh", _REFRESH, RefreshTokenState._fields),
        ("code", _CODES, CodeState._fields),
    )
    for locking in (False, True)
}


class Prelude(NamedTuple, Generic[_State]):
    """What the first statement of a grant read."""

    client_id: str
    #: Hash of the presented refresh token or code.
    credential_hash: str
    #: The client's row (whatever its state), or None when there is no such client.
    client: ClientState | None
    #: The refresh token's or code's row (whatever its state), or None when it is unknown.
    credential: _State | None
    #: True when the client's lock and the lock of the credential's user are held
    #: (PostgreSQL, S95).
    locked: bool


def _read(
    session: Session, kind: str, state: type[_State], client_id: str, credential_hash: str
) -> Prelude[_State]:
    locking = is_postgresql(session)
    params: dict[str, object] = {"client_id": client_id, "credential_hash": credential_hash}
    if locking:
        params["client_key"] = lock_key(client_id)
    row = session.connection().execute(_STATEMENTS[(kind, locking)], params).first()
    if row is None:  # no such client: nothing locked, and authentication fails
        return Prelude(client_id, credential_hash, None, None, False)
    client = remember(session, ClientState._make(row[:_CLIENT_WIDTH]))
    values = row[_CLIENT_WIDTH : _CLIENT_WIDTH + len(state._fields)]
    credential = state._make(values) if values[0] is not None else None
    # The user's lock is taken only when the credential's row (and so its subject) was found.
    return Prelude(
        client_id, credential_hash, client, credential, locking and credential is not None
    )


def read_client_and_refresh_token(
    session: Session, client_id: str, token_hash: str
) -> Prelude[RefreshTokenState]:
    """The rows of ``client_id`` and of the refresh token stored as ``token_hash`` in one
    statement; on PostgreSQL with the client's and the user's shared locks taken."""
    return _read(session, "refresh", RefreshTokenState, client_id, token_hash)


def read_client_and_code(session: Session, client_id: str, code_hash: str) -> Prelude[CodeState]:
    """The rows of ``client_id`` and of the authorization code stored as ``code_hash`` in one
    statement; on PostgreSQL with the client's and the user's shared locks taken."""
    return _read(session, "code", CodeState, client_id, code_hash)
