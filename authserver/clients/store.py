"""Finding, creating and retiring clients: registered rows (dynamic or static) and, for an
https ``client_id``, client ID metadata documents
(:mod:`authserver.clients.metadata_documents`), fetched by :func:`prefetch_client` (awaited,
outside any transaction) and read by :func:`load_client` inside one.

Client identifiers of registered clients are generated here, never chosen by the client
(RFC 7591 §3.2.1, S46). They carry 144 random bits (S18) behind the prefix ``dcr_``, and each
new one is checked against users' ids and usernames before use (S22): a client id can thus
never be mistaken for a user, e.g. as the ``sub`` of a client-credentials token. User ids are
32 hex digits, so the prefix alone already keeps generated ids apart from them; the check also
covers usernames, which an administrator chooses freely.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from authserver.accounts.users import names_a_user
from authserver.clients import metadata_documents
from authserver.context import AuthServer
from authserver.storage.client_rows import ClientState, ReadClient, read_client
from authserver.storage.crypto import new_token
from authserver.storage.models import Client, ClientKind, Consent
from authserver.storage.revocation import revoke_client_grants

#: A client as either reader returns it (ORM row or Core tuple).
_Read = TypeVar("_Read", Client, ClientState)

CLIENT_ID_PREFIX = "dcr_"
CLIENT_ID_BYTES = 18
#: The client by id, built once: every token request reads it (``Session.get`` builds its own
#: query on each call, at about twice the CPU of the statement executed).
_CLIENT_BY_ID = select(Client).where(Client.client_id == bindparam("client_id"))


def _is_document_id(server: AuthServer, client_id: str) -> bool:
    settings = server.settings
    return settings.client_id_metadata_documents and metadata_documents.looks_like_document_url(
        client_id, settings
    )


async def prefetch_client(server: AuthServer, client_id: str, ip: str) -> int:
    """Fetch or refresh ``client_id``'s metadata document when it needs it; 0, or the seconds
    the client at ``ip`` must wait (over its fetch limit: answer 429 with ``Retry-After``).

    Await it on the event loop *before* the endpoint's work (in a worker thread) opens the
    transaction that calls :func:`load_client`: the fetch runs with no database transaction
    open and holds no worker thread, so a slow document host neither holds the database's
    write lock nor the shared thread pool (S96). Registered clients cost nothing; cached
    documents one short read.
    """
    if not client_id or len(client_id) > 2048 or not _is_document_id(server, client_id):
        return 0
    return await metadata_documents.prefetch_document(server, client_id, ip=ip, refuse=names_a_user)


def load_client(server: AuthServer, session: Session, client_id: str) -> Client | None:
    """The enabled client called ``client_id``, or None when unknown or disabled.

    Reads only; never fetches. An https ``client_id`` (when ``client_id_metadata_documents``
    is on) is a metadata document, served from its cached row: fresh, or stale within the
    grace of :func:`authserver.clients.metadata_documents.usable_document_client`. Call
    :func:`prefetch_client` before the transaction to fetch or refresh it.
    """
    if not client_id or len(client_id) > 2048:
        return None
    return _usable(server, client_id, _get_client(session, client_id))


def load_client_state(
    server: AuthServer, session: Session, client_id: str, *, read: ReadClient | None = None
) -> ClientState | None:
    """:func:`load_client` as a :class:`~authserver.storage.client_rows.ClientState` tuple (the
    token, revocation and introspection endpoints): the same rules, one Core statement.

    ``read``: the client's row as this transaction already read it
    (:mod:`authserver.storage.grant_prelude`), instead of reading it again.
    """
    if not client_id or len(client_id) > 2048:
        return None
    if read is not None and read.client_id == client_id:
        return _usable(server, client_id, read.client)
    return _usable(server, client_id, read_client(session, client_id))


def _usable(server: AuthServer, client_id: str, client: _Read | None) -> _Read | None:
    """The rules both readers share: a registered client unless disabled; a metadata
    document client only while document ids are on and its cached row is usable."""
    if client is None:
        return None
    if client.kind != ClientKind.METADATA_DOCUMENT:
        return None if client.disabled else client
    if not _is_document_id(server, client_id):
        return None
    return metadata_documents.usable_document_client(client, server.now())


def _get_client(session: Session, client_id: str) -> Client | None:
    """``session.get(Client, client_id)``: the session's own row when it has one, else read."""
    known = session.identity_map.get(session.identity_key(Client, client_id))
    if isinstance(known, Client):
        return known
    return session.execute(_CLIENT_BY_ID, {"client_id": client_id}).scalar_one_or_none()


def random_client_id() -> str:
    """``dcr_`` and 144 random bits, URL-safe."""
    return CLIENT_ID_PREFIX + new_token(CLIENT_ID_BYTES)


def new_client_id(session: Session, generate: Callable[[], str] = random_client_id) -> str:
    """A fresh client id that names no client or user (S18, S22)."""
    for _ in range(8):
        candidate = generate()
        if session.get(Client, candidate) is None and not names_a_user(session, candidate):
            return candidate
    raise RuntimeError("could not generate an unused client id")


def delete_client(session: Session, client: Client, now: int, *, reason: str) -> None:
    """Delete ``client`` and revoke its grants, tokens and consents (RFC 7592 §2.3)."""
    client_id = client.client_id
    revoke_client_grants(session, client_id, now=now, reason=reason)
    session.execute(
        update(Consent)
        .where(Consent.client_id == client_id, Consent.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.delete(client)
