"""The console's consents and grants: the remembered approvals (RFC 9700 §4.1.1) and the live
grants with their tokens (RFC 6749 §1.5 refresh token families), and revoking one — as
``charter consents revoke`` and ``charter tokens revoke --grant`` do
(:mod:`authserver.storage.revocation`): the MCP server refuses the grant's access tokens
within its revocation poll."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.cli.lookups import usernames
from authserver.console.actions import Action, ActionRequest, Done, Refused, audit
from authserver.context import AuthServer
from authserver.storage.models import Consent, Grant
from authserver.storage.revocation import revoke_grant, revoke_user_grants

PAGE = "/grants"


def grants_page(server: AuthServer, session: Session, _query: Mapping[str, str]) -> dict[str, Any]:
    """Live consents and live grants, newest first."""
    from authserver.cli.consents import consent_record  # the CLI's records, on the first page
    from authserver.cli.tokens import grant_records

    now = server.now()
    consents = session.scalars(
        select(Consent)
        .where(Consent.revoked_at.is_(None), Consent.expires_at > now)
        .order_by(Consent.created_at.desc())
    ).all()
    names = usernames(session, (row.user_id for row in consents))
    return {
        "consents": [consent_record(row, names, now) for row in consents],
        "grants": grant_records(session, now, None, None),
    }


def _live_grant(session: Session, grant_id: str) -> Grant:
    grant = session.get(Grant, grant_id) if grant_id else None
    if grant is None or grant.revoked_at is not None:
        raise Refused(404, "There is no such live grant.")
    return grant


def _live_consent(session: Session, consent_id: str) -> Consent:
    consent = session.get(Consent, consent_id) if consent_id else None
    if consent is None or consent.revoked_at is not None:
        raise Refused(404, "There is no such live consent.")
    return consent


def _ask_grant(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    grant = _live_grant(session, request.target)
    user = usernames(session, [grant.subject]).get(grant.subject, grant.subject)
    return f"Revoke grant {grant.id} of {user} to client {grant.client_id} and all its tokens?"


def _ask_consent(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    consent = _live_consent(session, request.target)
    user = usernames(session, [consent.user_id]).get(consent.user_id, consent.user_id)
    return (
        f"Revoke the consent of {user} to client {consent.client_id} and the grants made "
        "under it? The client must ask again."
    )


def _revoke_grant(server: AuthServer, request: ActionRequest) -> Done:
    with server.database.transaction() as session:
        grant = _live_grant(session, request.target)
        revoke_grant(session, grant.id, now=request.now, reason="admin")
        audit(
            session,
            request,
            "admin_revoked",
            client_id=grant.client_id,
            subject=grant.subject,
            target_kind="grant",
            target=grant.id,
        )
    return Done("Grant revoked with its tokens.")


def _revoke_consent(server: AuthServer, request: ActionRequest) -> Done:
    with server.database.transaction() as session:
        consent = _live_consent(session, request.target)
        consent.revoked_at = request.now
        grants = revoke_user_grants(
            session,
            consent.user_id,
            now=request.now,
            reason="consent_revoked",
            client_id=consent.client_id,
        )
        audit(
            session,
            request,
            "consent_revoked",
            client_id=consent.client_id,
            subject=consent.user_id,
            revoked_grants=grants,
        )
    return Done(f"Consent revoked with {grants} grant(s).")


ACTIONS = (
    Action("grant-revoke", PAGE, _ask_grant, _revoke_grant, "Grant revoked with its tokens."),
    Action(
        "consent-revoke", PAGE, _ask_consent, _revoke_consent, "Consent revoked with its grants."
    ),
)
