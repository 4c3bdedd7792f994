"""Reaping clients nobody uses (S48; REAL-CLIENTS §4) and expired metadata document caches.

Dynamically registered clients that never obtained a token (``last_used_at`` is NULL) are
deleted once older than ``unused_client_ttl``. Cached client ID metadata documents whose
``expires_at`` and grace
(:data:`authserver.clients.metadata_documents.STALE_GRACE_SECONDS`, during which a stale row
is still served when its refresh fails) have passed are deleted too: they are fetched
again when next needed. Both
work in batches, one short transaction each, so that a large backlog never holds a long lock.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from authserver.clients.metadata_documents import STALE_GRACE_SECONDS
from authserver.context import AuthServer
from authserver.storage.models import Client, ClientKind


def reap_unused_clients(server: AuthServer, batch_size: int = 500) -> int:
    """Delete never-used dynamic clients older than the TTL; the number deleted."""
    cutoff = server.now() - server.settings.unused_client_ttl
    total = 0
    while True:
        with server.database.transaction() as session:
            ids = list(
                session.scalars(
                    select(Client.client_id)
                    .where(
                        Client.kind == ClientKind.DYNAMIC,
                        Client.last_used_at.is_(None),
                        Client.created_at < cutoff,
                    )
                    .limit(batch_size)
                )
            )
            if ids:
                session.execute(
                    delete(Client).where(Client.client_id.in_(ids), Client.last_used_at.is_(None))
                )
        total += len(ids)
        if len(ids) < batch_size:
            return total


def purge_expired_metadata_documents(server: AuthServer, batch_size: int = 500) -> int:
    """Delete cached metadata document clients whose cache lifetime and grace have passed."""
    now = server.now() - STALE_GRACE_SECONDS
    total = 0
    while True:
        with server.database.transaction() as session:
            ids = list(
                session.scalars(
                    select(Client.client_id)
                    .where(Client.kind == ClientKind.METADATA_DOCUMENT, Client.expires_at < now)
                    .limit(batch_size)
                )
            )
            if ids:
                session.execute(delete(Client).where(Client.client_id.in_(ids)))
        total += len(ids)
        if len(ids) < batch_size:
            return total
