"""Reading the audit trail: the events matching a filter (time, event names, user, client), for
``charter audit`` and the admin console."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from authserver.storage.models import AuditEvent

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class AuditFilter:
    """Which events to read; every field left empty matches everything."""

    since: int | None = None
    events: tuple[str, ...] = ()
    subject: str | None = None
    client_id: str | None = None
    #: Only events with a larger id (following the trail).
    after_id: int | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        """``query`` narrowed to the events this filter matches."""
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        if self.events:
            query = query.where(AuditEvent.event.in_(self.events))
        if self.subject:
            query = query.where(AuditEvent.subject == self.subject)
        if self.client_id:
            query = query.where(AuditEvent.client_id == self.client_id)
        if self.after_id is not None:
            query = query.where(AuditEvent.id > self.after_id)
        return query


def newest_events(session: Session, where: AuditFilter, limit: int) -> list[AuditEvent]:
    """The ``limit`` newest matching events, oldest first (as a log reads)."""
    query = where.apply(select(AuditEvent)).order_by(AuditEvent.id.desc()).limit(limit)
    rows: list[AuditEvent] = list(session.scalars(query).all())
    rows.reverse()
    return rows


def parse_since(value: str, now: int) -> int:
    """``--since``: a duration back from ``now`` (``90s``, ``15m``, ``2h``, ``7d``, ``1w``,
    also combined: ``1h30m``) or an ISO 8601 date/time (UTC when no zone is given)."""
    text = value.strip().lower()
    if text and _DURATION.sub("", text) == "":
        total = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text))
        return now - total
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--since {value!r}: give a duration (30m, 2h, 7d) or a date/time (2026-12-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
