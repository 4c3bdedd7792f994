"""A client row as the token, revocation and introspection endpoints read it: one prebuilt
Core statement, a plain tuple (RFC 6749 §2.3, §3.2; RFC 7591 §2).

Client authentication reads the client on every token request; as an ORM instance that read
costs several times the statement (identity map, instance state). Here it is a tuple of the
columns those endpoints use, read on the session's own connection (same transaction, same
locks), and remembered in the session's ``info`` so that
:func:`authserver.storage.issuance_locks.hold_client` can tell a row read in *this*
transaction from any other (S95). The meaning of the columns is that of
:class:`authserver.storage.models.Client`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from authserver.storage.models import Client

_CLIENTS = cast(Table, Client.__table__)
#: Key of :attr:`Session.info`: the client rows this session read, by client id.
READ_KEY = "charter_clients_read"


class ClientState(NamedTuple):
    """The columns of one client row that authentication and the grants use."""

    client_id: str
    kind: str
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    token_endpoint_auth_method: str
    scope: str
    secret_hash: str | None
    secret_expires_at: int
    last_used_at: int | None
    expires_at: int | None
    disabled: bool


class ReadClient(Protocol):
    """A client id and its row (None: no such client) read earlier in this transaction."""

    @property
    def client_id(self) -> str: ...
    @property
    def client(self) -> ClientState | None: ...


_CLIENT_BY_ID = select(*(_CLIENTS.c[name] for name in ClientState._fields)).where(
    _CLIENTS.c.client_id == bindparam("client_id")
)


def read_client(session: Session, client_id: str) -> ClientState | None:
    """The row of ``client_id`` whatever its state, or None; remembered as read by ``session``."""
    row = session.connection().execute(_CLIENT_BY_ID, {"client_id": client_id}).first()
    if row is None:
        return None
    return remember(session, ClientState._make(row))


def remember(session: Session, state: ClientState) -> ClientState:
    """Note ``state`` as its client's row read by ``session`` (in this transaction)."""
    session.info.setdefault(READ_KEY, {})[state.client_id] = state
    return state


def read_by(session: Session, state: ClientState) -> bool:
    """True when ``state`` is the row of its client as ``session`` read it."""
    read: dict[str, ClientState] = session.info.get(READ_KEY, {})
    return read.get(state.client_id) is state
