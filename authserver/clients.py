"""Finding the client a request names: registered rows (dynamic or static) and, for an https
``client_id``, client ID metadata documents."""

from __future__ import annotations

from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.storage.models import Client


def load_client(server: AuthServer, session: Session, client_id: str) -> Client | None:
    """The enabled client called ``client_id``, or None when unknown or disabled."""
    if not client_id or len(client_id) > 2048:
        return None
    client = session.get(Client, client_id)
    if client is None or client.disabled:
        return None
    return client
