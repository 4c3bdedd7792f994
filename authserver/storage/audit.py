"""The audit trail of security events: registration, tokens, reuse detection, revocation,
logins, consents and every administrative change.

:func:`record_event` adds the row in the caller's transaction, so an event is stored exactly
once, by the worker whose transaction made it happen, and never for work rolled back. It is
inserted at once, by a Core statement built once on the session's connection (a code
exchange records one on every grant; through the ORM's unit of work the insert costs several
times the statement). Each row
carries the client's address and the request id of the HTTP request being served (from
:mod:`authserver.ops.logging_setup`'s context variables) unless the caller gives them.

Only once the transaction commits is the event counted (:mod:`authserver.ops.metrics`), logged
(logger ``charter.audit``) and, when the
deployment has one, appended to its JSON-lines sink (:class:`JsonLinesSink`, setting
``audit_log_file``) for log shippers. Callers never pass secrets; the ``detail`` values are
identifiers and reasons (S92).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from authserver.ops.logging_setup import CLIENT_ADDRESS, REQUEST_ID
from authserver.ops.metrics import count_security_event
from authserver.storage.models import AuditEvent

logger = logging.getLogger("charter.audit")

_INSERT_EVENT = insert(cast(Table, AuditEvent.__table__))

#: Key of :attr:`Session.info` holding the events this transaction recorded.
PENDING_KEY = "charter_audit_pending"
#: Key of :attr:`Session.info` holding the deployment's :class:`JsonLinesSink` (or None).
SINK_KEY = "charter_audit_sink"


class JsonLinesSink:
    """Appends one JSON object per audit event to a file (``O_APPEND``: whole lines from
    every worker, never interleaved within a line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries``, one line each, in one ``write`` call."""
        if not entries:
            return
        data = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        with self._lock:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, data.encode())
            finally:
                os.close(descriptor)


def event_entry(row: AuditEvent) -> dict[str, Any]:
    """The audit row as the sink, ``charter audit --json`` and the console show it."""
    return {
        "id": row.id,
        "at": row.at,
        "time": datetime.fromtimestamp(row.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "event": row.event,
        "client_id": row.client_id,
        "subject": row.subject,
        "ip": row.ip,
        "request_id": row.request_id,
        "detail": dict(row.detail or {}),
    }


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
    """Store an audit row in the caller's transaction (never with secrets); it is logged and
    sent to the sink once the transaction commits."""
    values = event_values(event, at=at, client_id=client_id, subject=subject, ip=ip, **detail)
    result = session.connection().execute(_INSERT_EVENT, values)
    key = result.inserted_primary_key
    note_recorded(session, key[0] if key is not None else None, values)


def event_values(
    event: str,
    *,
    at: int,
    client_id: str | None = None,
    subject: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """The columns of an audit row, with the client's address and the request id of the
    request being served unless given."""
    return {
        "at": at,
        "event": event,
        "client_id": client_id,
        "subject": subject,
        "ip": ip or CLIENT_ADDRESS.get(),
        "request_id": REQUEST_ID.get(),
        "detail": detail,
    }


def note_recorded(session: Session, event_id: int | None, values: dict[str, Any]) -> None:
    """Note the audit row ``values`` (stored as ``event_id`` by a statement of this
    transaction) to be logged and sent to the sink once the transaction commits."""
    # Not added to the session: the row is stored; this copy is only what the log shows.
    row = AuditEvent(id=event_id, **values)
    session.info.setdefault(PENDING_KEY, []).append(row)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    rows: list[AuditEvent] = session.info.pop(PENDING_KEY, [])
    if not rows:
        return
    entries = [event_entry(row) for row in rows]
    for entry in entries:
        count_security_event(entry["event"])
        logger.info(
            "%s client=%s subject=%s %s",
            entry["event"],
            entry["client_id"],
            entry["subject"],
            entry["detail"] or "",
        )
    sink: JsonLinesSink | None = session.info.get(SINK_KEY)
    if sink is not None:
        try:
            sink.write(entries)
        except OSError as exc:  # the rows are stored; a full disk must not fail the request
            logger.error("audit sink %s: %s", sink.path, exc)


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
