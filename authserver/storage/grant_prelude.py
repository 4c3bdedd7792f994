"""The first statement of a refresh grant: the client's row and the presented refresh token's
row in one read, and on PostgreSQL the S95 locks (RFC 6749 §2.3, §6; RFC 9700 §4.14.2).

Client authentication reads the client row, then the grant reads the refresh token's row, then
(PostgreSQL) takes the client's and the user's shared locks: four statements, each a round trip
on PostgreSQL. Here one ``SELECT`` of the client ``LEFT JOIN`` the refresh token does the two
reads, and on PostgreSQL it also takes the client's lock and then the lock of the user the token
belongs to (:func:`authserver.storage.issuance_locks.sql_lock_key`: the same key as
:func:`~authserver.storage.issuance_locks.lock_key`, computed from the row just read). The
columns of a target list are evaluated in order, so the order of the locks is that of
:mod:`authserver.storage.issuance_locks`: client, then user, then (later) the grant.

What the locks guard is read by a *later* statement, whose snapshot begins once they are held:
the client's ``disabled`` flag and the user's state are read again by
:mod:`authserver.storage.refresh_rotation`. The client row read here serves authentication
only (secret, methods, grant types), as the separate read before the lock did.

The client row is remembered as read by this session
(:func:`authserver.storage.client_rows.remember`), so that on SQLite
:func:`~authserver.storage.issuance_locks.hold_client` needs no second read (the transaction
began ``IMMEDIATE``). No caching across requests: every grant reads the rows it uses in its
own transaction.

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

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
from authserver.storage.models import Client, RefreshToken
from authserver.storage.token_rows import RefreshTokenState

_CLIENTS = cast(Table, Client.__table__)
_REFRESH = cast(Table, RefreshToken.__table__)
_CLIENT_COLUMNS = [_CLIENTS.c[name] for name in ClientState._fields]
_REFRESH_COLUMNS = [_REFRESH.c[name].label("rt_" + name) for name in RefreshTokenState._fields]


def _statement(*, locking: bool) -> Select[Any]:
    columns: list[ColumnElement[Any]] = [*_CLIENT_COLUMNS, *_REFRESH_COLUMNS]
    if locking:
        columns += [
            shared_lock(CLIENT_LOCK_SPACE, bindparam("client_key")),
            shared_lock(USER_LOCK_SPACE, sql_lock_key(f"{_REFRESH.name}.subject")),
        ]
    return (
        select(*columns)
        .select_from(_CLIENTS.outerjoin(_REFRESH, _REFRESH.c.token_hash == bindparam("token_hash")))
        .where(_CLIENTS.c.client_id == bindparam("client_id"))
    )


_READ = _statement(locking=False)
_READ_AND_LOCK = _statement(locking=True)
_CLIENT_WIDTH = len(ClientState._fields)
_REFRESH_WIDTH = len(RefreshTokenState._fields)


class RefreshPrelude(NamedTuple):
    """What the first statement of a refresh grant read."""

    client_id: str
    token_hash: str
    #: The client's row (whatever its state), or None when there is no such client.
    client: ClientState | None
    #: The refresh token's row (whatever its state), or None when it is unknown.
    refresh: RefreshTokenState | None
    #: True when the client's and the token's user's locks are held (PostgreSQL, S95).
    locked: bool


def read_client_and_refresh_token(
    session: Session, client_id: str, token_hash: str
) -> RefreshPrelude:
    """The rows of ``client_id`` and of the refresh token stored as ``token_hash`` in one
    statement; on PostgreSQL with the client's and the user's shared locks taken."""
    locking = is_postgresql(session)
    statement = _READ_AND_LOCK if locking else _READ
    params: dict[str, object] = {"client_id": client_id, "token_hash": token_hash}
    if locking:
        params["client_key"] = lock_key(client_id)
    row = session.connection().execute(statement, params).first()
    if row is None:  # no such client: nothing locked, and authentication fails
        return RefreshPrelude(client_id, token_hash, None, None, False)
    client = remember(session, ClientState._make(row[:_CLIENT_WIDTH]))
    refresh_values = row[_CLIENT_WIDTH : _CLIENT_WIDTH + _REFRESH_WIDTH]
    refresh = RefreshTokenState._make(refresh_values) if refresh_values[0] is not None else None
    # The user's lock is taken only when the token's row (and so its subject) was found.
    return RefreshPrelude(client_id, token_hash, client, refresh, locking and refresh is not None)
