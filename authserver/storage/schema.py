"""Bringing a database to the current schema."""

from __future__ import annotations

from sqlalchemy import Engine

from authserver.storage.models import Base


def prepare_database(engine: Engine) -> None:
    """Create or upgrade the authorization server's tables (idempotent)."""
    Base.metadata.create_all(engine)
