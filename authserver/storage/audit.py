"""The audit trail of security events: registration, tokens, reuse detection, revocation."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from authserver.storage.models import AuditEvent

logger = logging.getLogger("charter.audit")


def record_event(
    session: Session,
    event: str,
    *,
    at: int,
    client_id: str | None = None,
    subject: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Add an audit row in the caller's transaction and log it (never with secrets)."""
    session.add(
        AuditEvent(at=at, event=event, client_id=client_id, subject=subject, ip=ip, detail=detail)
    )
    logger.info("%s client=%s subject=%s %s", event, client_id, subject, detail or "")
