"""``charter consents``: remembered user approvals of clients (RFC 9700 §4.1.1), and forgetting
them with the grants made under them (:mod:`authserver.storage.revocation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from sqlalchemy import select

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
from authserver.storage.audit import record_event
from authserver.storage.models import Consent
from authserver.storage.revocation import revoke_user_grants

CONSENT_COLUMNS = (
    Column("CONSENT", "id"),
    Column("USER", "user"),
    Column("CLIENT", "client_id"),
    Column("SCOPE", "scope"),
    Column("RESOURCE", "resource"),
    time_column("CREATED", "created_at"),
    time_column("EXPIRES", "expires_at"),
    Column("STATUS", "status"),
)


def consent_record(consent: Consent, names: dict[str, str], now: int) -> dict[str, Any]:
    """A consent as shown by the CLI."""
    if consent.revoked_at is not None:
        status = "revoked"
    elif consent.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": consent.id,
        "user_id": consent.user_id,
        "user": names.get(consent.user_id, consent.user_id),
        "client_id": consent.client_id,
        "scope": consent.scope,
        "resource": consent.resource,
        "redirect_uri": consent.redirect_uri,
        "created_at": consent.created_at,
        "expires_at": consent.expires_at,
        "status": status,
    }


@click.group()
def consents() -> None:
    """Remembered user approvals of clients."""


@consents.command("list")
@click.option("--user", metavar="USERNAME", help="Only this user's.")
@click.option("--client", "client_id", metavar="CLIENT_ID", help="Only for this client.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired ones.")
@json_option
def list_consents(user: str | None, client_id: str | None, show_all: bool, as_json: bool) -> None:
    """Active consents (all with --all)."""
    server = open_server()
    now = server.now()
    with server.database.transaction() as session:
        query = select(Consent)
        if not show_all:
            query = query.where(Consent.revoked_at.is_(None), Consent.expires_at > now)
        if user:
            query = query.where(Consent.user_id == resolve_subject(session, user))
        if client_id:
            query = query.where(Consent.client_id == require_client(session, client_id))
        rows: Sequence[Consent] = session.scalars(query.order_by(Consent.created_at.desc())).all()
        names = usernames(session, (row.user_id for row in rows))
        records = [consent_record(row, names, now) for row in rows]
    emit_records(records, CONSENT_COLUMNS, as_json=as_json, empty="no consents")


@consents.command("revoke")
@click.argument("consent_id", required=False)
@click.option("--user", metavar="USERNAME", help="Every consent of this user.")
@click.option("--client", "client_id", metavar="CLIENT_ID", help="Every consent for this client.")
@yes_option
@json_option
def revoke_consents(
    consent_id: str | None, user: str | None, client_id: str | None, yes: bool, as_json: bool
) -> None:
    """Revoke CONSENT_ID, or all of a user's and/or a client's consents.

    The user is asked again next time, and the grants made under the consent are revoked.
    """
    if bool(consent_id) == bool(user or client_id):
        usage_error("give a CONSENT_ID, or --user and/or --client")
    what = f"consent {consent_id}" if consent_id else "the matching consents"
    confirm(f"revoke {what} and the grants made under it", yes=yes)
    server = open_server()
    now = server.now()
    with server.database.transaction() as session:
        query = select(Consent).where(Consent.revoked_at.is_(None))
        if consent_id:
            query = query.where(Consent.id == consent_id)
        if user:
            query = query.where(Consent.user_id == resolve_subject(session, user))
        if client_id:
            query = query.where(Consent.client_id == require_client(session, client_id))
        rows = session.scalars(query).all()
        if not rows:
            fail("no live consent matches", "see `charter consents list`")
        grants = 0
        for row in rows:
            row.revoked_at = now
            grants += revoke_user_grants(
                session, row.user_id, now=now, reason="consent_revoked", client_id=row.client_id
            )
            record_event(
                session, "consent_revoked", at=now, client_id=row.client_id, subject=row.user_id
            )
    emit_result(
        f"revoked {len(rows)} consent(s) and {grants} grant(s)",
        {"revoked_consents": len(rows), "revoked_grants": grants},
        as_json=as_json,
    )
