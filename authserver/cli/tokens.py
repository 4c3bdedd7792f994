"""``charter tokens``: what was granted (access tokens, grants), and taking it back.

Revocation marks rows (``revoked_at``) with :mod:`authserver.storage.revocation`, which the
resource server's revocation view picks up; nothing secret is ever printed (only ``jti`` and ids).
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.cli.context import open_server
from authserver.cli.lookups import require_client, resolve_subject, usernames
from authserver.cli.output import (
    Column,
    confirm,
    emit_records,
    emit_result,
    fail,
    json_option,
    time_column,
    usage_error,
    yes_option,
)
from authserver.ops.purge import purge_expired
from authserver.storage.audit import record_event
from authserver.storage.models import AccessToken, Grant
from authserver.storage.revocation import (
    revoke_access_token,
    revoke_client_grants,
    revoke_grant,
    revoke_user_grants,
)

ACCESS_TOKEN_COLUMNS = (
    Column("JTI", "jti"),
    Column("CLIENT", "client_id"),
    Column("USER", "user"),
    Column("SCOPE", "scope"),
    time_column("ISSUED", "issued_at"),
    time_column("EXPIRES", "expires_at"),
    Column("GRANT", "grant_id"),
)
GRANT_COLUMNS = (
    Column("GRANT", "id"),
    Column("CLIENT", "client_id"),
    Column("USER", "user"),
    Column("SCOPE", "scope"),
    Column("TYPE", "grant_type"),
    time_column("CREATED", "created_at"),
    time_column("EXPIRES", "expires_at"),
)


@click.group()
def tokens() -> None:
    """Issued access tokens and grants (refresh token families)."""


@tokens.command("list")
@click.option("--grants", "show_grants", is_flag=True, help="List live grants, not tokens.")
@click.option("--client", "client_id", metavar="CLIENT_ID", help="Only this client's.")
@click.option("--user", metavar="USERNAME", help="Only this user's.")
@json_option
def list_tokens(show_grants: bool, client_id: str | None, user: str | None, as_json: bool) -> None:
    """Live (unexpired, unrevoked) access tokens, or grants with --grants. No secrets."""
    server = open_server()
    now = server.now()
    with server.database.transaction() as session:
        if client_id:
            require_client(session, client_id)
        subject = resolve_subject(session, user) if user else None
        if show_grants:
            records = grant_records(session, now, client_id, subject)
        else:
            records = access_token_records(session, now, client_id, subject)
    if show_grants:
        emit_records(records, GRANT_COLUMNS, as_json=as_json, empty="no live grants")
    else:
        emit_records(records, ACCESS_TOKEN_COLUMNS, as_json=as_json, empty="no live access tokens")


def grant_records(
    session: Session, now: int, client_id: str | None, subject: str | None
) -> list[dict[str, Any]]:
    """The live grants (of ``client_id`` and ``subject`` when given), newest first."""
    query = select(Grant).where(Grant.revoked_at.is_(None), Grant.expires_at > now)
    if client_id:
        query = query.where(Grant.client_id == client_id)
    if subject:
        query = query.where(Grant.subject == subject)
    grants = session.scalars(query.order_by(Grant.created_at.desc())).all()
    names = usernames(session, (grant.subject for grant in grants))
    return [
        {
            "id": grant.id,
            "client_id": grant.client_id,
            "subject": grant.subject,
            "user": names.get(grant.subject, grant.subject),
            "scope": grant.scope,
            "resource": grant.resource,
            "grant_type": grant.grant_type,
            "created_at": grant.created_at,
            "expires_at": grant.expires_at,
        }
        for grant in grants
    ]


def access_token_records(
    session: Session, now: int, client_id: str | None, subject: str | None
) -> list[dict[str, Any]]:
    """The live access tokens (of ``client_id`` and ``subject`` when given), newest first."""
    query = select(AccessToken).where(
        AccessToken.revoked_at.is_(None), AccessToken.expires_at > now
    )
    if client_id:
        query = query.where(AccessToken.client_id == client_id)
    if subject:
        query = query.where(AccessToken.subject == subject)
    rows = session.scalars(query.order_by(AccessToken.issued_at.desc())).all()
    names = usernames(session, (row.subject for row in rows))
    return [
        {
            "jti": row.jti,
            "grant_id": row.grant_id,
            "client_id": row.client_id,
            "subject": row.subject,
            "user": names.get(row.subject, row.subject),
            "scope": row.scope,
            "resource": row.resource,
            "issued_at": row.issued_at,
            "expires_at": row.expires_at,
        }
        for row in rows
    ]


def _exactly_one(**choices: str | None) -> tuple[str, str]:
    given = [(name, value) for name, value in choices.items() if value]
    if len(given) != 1:
        names = ", ".join(f"--{name}" for name in choices)
        usage_error(f"give exactly one of {names}")
    return given[0][0], given[0][1] or ""


@tokens.command("revoke")
@click.option("--jti", metavar="JTI", help="One access token, by its jti.")
@click.option("--grant", "grant_id", metavar="GRANT_ID", help="A grant and all its tokens.")
@click.option("--client", "client_id", metavar="CLIENT_ID", help="Every grant of a client.")
@click.option("--user", metavar="USERNAME", help="Every grant of a user.")
@yes_option
@json_option
def revoke_tokens(
    jti: str | None,
    grant_id: str | None,
    client_id: str | None,
    user: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Revoke by jti, grant, client or user (the resource server stops accepting them)."""
    kind, target = _exactly_one(jti=jti, grant=grant_id, client=client_id, user=user)
    confirm(f"revoke the tokens of {kind} {target}", yes=yes)
    server = open_server()
    now = server.now()
    with server.database.transaction() as session:
        if kind == "jti":
            if not revoke_access_token(session, target, now=now):
                fail(f"no live access token with jti {target!r}", "see `charter tokens list`")
            count = 1
        elif kind == "grant":
            if session.get(Grant, target) is None:
                fail(f"no grant {target!r}", "see `charter tokens list --grants`")
            revoke_grant(session, target, now=now, reason="admin")
            count = 1
        elif kind == "client":
            require_client(session, target)
            count = revoke_client_grants(session, target, now=now, reason="admin")
        else:
            subject = resolve_subject(session, target)
            count = revoke_user_grants(session, subject, now=now, reason="admin")
        record_event(session, "admin_revoked", at=now, target_kind=kind, target=target)
    noun = "access token" if kind == "jti" else "grant(s)"
    emit_result(
        f"revoked {count} {noun} for {kind} {target}",
        {"revoked": count, "kind": kind, "target": target},
        as_json=as_json,
    )


@tokens.command("purge")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@yes_option
@json_option
def purge(batch_size: int, yes: bool, as_json: bool) -> None:
    """Delete expired codes, tokens, grants, sessions and counters in batches."""
    confirm("delete every expired row", yes=yes)
    server = open_server()
    counts = purge_expired(server, batch_size)
    total = sum(counts.values())
    detail = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count)
    emit_result(
        f"purged {total} expired row(s)" + (f": {detail}" if detail else ""),
        {"purged": counts, "total": total},
        as_json=as_json,
    )
