"""``charter audit``: reading the audit trail (``list``, and ``tail`` to follow it).

Events are shown oldest first, with the user's name where the user still exists, the client,
the client's address, the request id (as in the access log) and the event's details. ``--json``
prints a JSON array (``list``) or one JSON object per line (``tail``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from sqlalchemy.orm import Session

from authserver.accounts.users import find_user
from authserver.cli.context import open_server
from authserver.cli.lookups import usernames
from authserver.cli.output import Column, emit_records, json_option, time_column, usage_error
from authserver.context import AuthServer
from authserver.storage.audit import event_entry
from authserver.storage.audit_query import AuditFilter, newest_events, parse_since

AUDIT_COLUMNS = (
    time_column("TIME", "at"),
    Column("EVENT", "event"),
    Column("USER", "user"),
    Column("CLIENT", "client_id"),
    Column("IP", "ip"),
    Column("REQUEST", "request_id"),
    Column(
        "DETAIL", "detail", lambda detail: json.dumps(detail, sort_keys=True) if detail else "-"
    ),
)
#: Events re-read on each poll of ``tail``: rows committed out of id order are not missed.
TAIL_OVERLAP_SECONDS = 10


def filter_options(function: Any) -> Any:
    """The options ``list`` and ``tail`` share."""
    options = (
        click.option("--since", metavar="WHEN", help="Only newer events: 30m, 2h, 7d or a date."),
        click.option(
            "--event", "events", multiple=True, metavar="NAME", help="Only this event (repeat)."
        ),
        click.option("--user", metavar="USERNAME", help="Only events of this user (name or id)."),
        click.option("--client", "client_id", metavar="CLIENT_ID", help="Only this client's."),
    )
    for option in reversed(options):
        function = option(function)
    return function


def build_filter(
    session: Session,
    now: int,
    since: str | None,
    events: tuple[str, ...],
    user: str | None,
    client_id: str | None,
) -> AuditFilter:
    """The filter the options describe (a user that no longer exists is matched by id)."""
    try:
        start = parse_since(since, now) if since else None
    except ValueError as exc:
        usage_error(str(exc))
    subject = None
    if user:
        found = find_user(session, user)
        subject = found.id if found is not None else user
    names = tuple(name for value in events for name in value.replace(",", " ").split())
    return AuditFilter(since=start, events=names, subject=subject, client_id=client_id)


def records(session: Session, where: AuditFilter, limit: int) -> list[dict[str, Any]]:
    """The matching events as records (``user`` added), oldest first."""
    rows = newest_events(session, where, limit)
    names = usernames(session, (row.subject for row in rows if row.subject))
    entries = [event_entry(row) for row in rows]
    for entry in entries:
        entry["user"] = names.get(entry["subject"] or "", entry["subject"])
    return entries


@click.group()
def audit() -> None:
    """The audit trail: logins, consents, tokens, revocations, administrative changes."""


@audit.command("list")
@filter_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
def list_events(
    since: str | None,
    events: tuple[str, ...],
    user: str | None,
    client_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The newest matching events, oldest first."""
    server = open_server()
    with server.database.transaction() as session:
        where = build_filter(session, server.now(), since, events, user, client_id)
        found = records(session, where, limit)
    emit_records(found, AUDIT_COLUMNS, as_json=as_json, empty="no audit events")


@audit.command("tail")
@filter_options
@click.option("--lines", "-n", default=10, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 60))
@json_option
def tail_events(
    since: str | None,
    events: tuple[str, ...],
    user: str | None,
    client_id: str | None,
    lines: int,
    interval: float,
    as_json: bool,
) -> None:
    """The last events, then new ones as they are recorded (until interrupted)."""
    server = open_server()
    with server.database.transaction() as session:
        where = build_filter(session, server.now(), since, events, user, client_id)
    follow(server, where, lines, interval, as_json)


def follow(
    server: AuthServer, where: AuditFilter, lines: int, interval: float, as_json: bool
) -> None:
    """Print the last ``lines`` events, then poll for new ones every ``interval`` seconds.

    Each poll re-reads the last :data:`TAIL_OVERLAP_SECONDS` and prints what it has not
    printed yet, so an event committed after one with a larger id still shows.
    """
    with server.database.transaction() as session:
        for entry in records(session, where, lines) if lines else []:
            show(entry, as_json)
    seen: dict[int, int] = {}
    first = True
    while True:
        window = max(where.since or 0, server.now() - TAIL_OVERLAP_SECONDS)
        recent = AuditFilter(window, where.events, where.subject, where.client_id)
        with server.database.transaction() as session:
            found = records(session, recent, 10_000)
        for entry in found:
            if entry["id"] not in seen and not first:
                show(entry, as_json)
            seen[entry["id"]] = entry["at"]
        seen = {key: at for key, at in seen.items() if at >= window}
        first = False
        time.sleep(interval)


def show(entry: dict[str, Any], as_json: bool) -> None:
    """One event on one line."""
    if as_json:
        click.echo(json.dumps(entry, sort_keys=True), nl=True)
        return
    cells = [column.cell(entry) for column in AUDIT_COLUMNS]
    click.echo("  ".join(cells))
