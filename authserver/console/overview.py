"""The console's first page: how many clients, users, live grants and signing keys there are,
with links to each page (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.storage.models import Client, Grant, SigningKey, User


def overview_page(
    server: AuthServer, session: Session, _query: Mapping[str, str]
) -> dict[str, Any]:
    """The counts of the overview."""
    now = server.now()

    def count(model: Any, *where: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return {
        "counts": {
            "clients": count(Client),
            "users": count(User),
            "grants": count(Grant, Grant.revoked_at.is_(None), Grant.expires_at > now),
            "keys": count(SigningKey),
        }
    }
