"""The console's audit trail: the newest events matching a filter (event names, user, client,
since), read with :mod:`authserver.storage.audit_query` as ``charter audit`` does. Read-only;
an unknown user or a since that cannot be read says so instead of showing everything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from authserver.accounts.users import find_user
from authserver.cli.lookups import usernames
from authserver.context import AuthServer
from authserver.storage.audit import event_entry
from authserver.storage.audit_query import AuditFilter, newest_events, parse_since

PAGE = "/audit"
#: Most events one page shows.
LIMIT = 200
FIELDS = ("event", "user", "client", "since")


def _filter(server: AuthServer, session: Session, query: Mapping[str, str]) -> AuditFilter:
    """The filter the query asks for; ValueError with a message people read."""
    events = tuple(name for name in query.get("event", "").replace(",", " ").split() if name)
    subject = None
    if query.get("user", "").strip():
        user = find_user(session, query["user"].strip())
        if user is None:
            raise ValueError("There is no such user.")
        subject = user.id
    since_text = query.get("since", "").strip()
    since = parse_since(since_text, server.now()) if since_text else None
    client_id = query.get("client", "").strip() or None
    return AuditFilter(since=since, events=events, subject=subject, client_id=client_id)


def audit_page(server: AuthServer, session: Session, query: Mapping[str, str]) -> dict[str, Any]:
    """The filter form, filled in as asked, and the newest matching events, newest first."""
    shown = {name: query.get(name, "") for name in FIELDS}
    try:
        where = _filter(server, session, query)
    except ValueError as exc:
        return {"filters": shown, "events": [], "problem": str(exc), "limit": LIMIT}
    rows = newest_events(session, where, LIMIT)
    rows.reverse()
    names = usernames(session, (row.subject for row in rows if row.subject))
    events = []
    for row in rows:
        entry = event_entry(row)
        entry["user"] = names.get(row.subject or "", row.subject or "")
        entry["detail_text"] = " ".join(f"{key}={value}" for key, value in entry["detail"].items())
        events.append(entry)
    return {"filters": shown, "events": events, "problem": None, "limit": LIMIT}
