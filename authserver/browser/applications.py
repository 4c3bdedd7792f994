"""The applications connected to one user's account, and disconnecting one (RFC 7009 §2 from the
user's side; RFC 9700 §4.14.2; S94).

An application is connected while it holds a live grant of the user (a refresh token family and
its access tokens) or a live remembered consent. Everything here is read and changed *for the
signed-in user only*: every query is narrowed to ``subject == user_id`` before it looks at the
client, so a form naming another user's client finds nothing of this user's and changes
nothing. Disconnecting revokes the user's grants of that client with their tokens
(:func:`authserver.storage.revocation.revoke_user_grants`, as ``charter tokens revoke`` and
``charter consents revoke`` do; the MCP server refuses the access tokens within its revocation
poll) and the consents, so the next authorization asks again; it is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from authserver.browser.pages import client_name
from authserver.storage.audit import record_event
from authserver.storage.models import AccessToken, Client, Consent, Grant
from authserver.storage.revocation import revoke_user_grants

#: ``revoked_reason`` of the grants a user disconnects.
USER_REVOKED = "user_revoked"


@dataclass
class ConnectedApplication:
    """One client as the user's page shows it."""

    client_id: str
    name: str = ""
    scopes: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    created_at: int = 0
    last_used_at: int | None = None
    grants: int = 0

    def add(self, scope: str, resource: str, created_at: int) -> None:
        """Merge one grant's or consent's terms."""
        for name in scope.split():
            if name not in self.scopes:
                self.scopes.append(name)
        if resource and resource not in self.resources:
            self.resources.append(resource)
        self.created_at = min(self.created_at, created_at) if self.created_at else created_at


def _live_grants(session: Session, user_id: str, now: int) -> list[Grant]:
    query = select(Grant).where(
        Grant.subject == user_id, Grant.revoked_at.is_(None), Grant.expires_at > now
    )
    return list(session.scalars(query.order_by(Grant.created_at)))


def _live_consents(session: Session, user_id: str, now: int) -> list[Consent]:
    query = select(Consent).where(
        Consent.user_id == user_id, Consent.revoked_at.is_(None), Consent.expires_at > now
    )
    return list(session.scalars(query.order_by(Consent.created_at)))


def _last_used(session: Session, user_id: str) -> dict[str, int]:
    """Client id -> when it was last given an access token for this user."""
    rows = session.execute(
        select(AccessToken.client_id, func.max(AccessToken.issued_at))
        .where(AccessToken.subject == user_id)
        .group_by(AccessToken.client_id)
    ).all()
    return {client_id: int(issued) for client_id, issued in rows if issued is not None}


def connected_applications(session: Session, user_id: str, now: int) -> list[ConnectedApplication]:
    """The user's connected applications, most recently used first."""
    found: dict[str, ConnectedApplication] = {}
    for grant in _live_grants(session, user_id, now):
        app = found.setdefault(grant.client_id, ConnectedApplication(grant.client_id))
        app.add(grant.scope, grant.resource, grant.created_at)
        app.grants += 1
    for consent in _live_consents(session, user_id, now):
        app = found.setdefault(consent.client_id, ConnectedApplication(consent.client_id))
        app.add(consent.scope, consent.resource, consent.created_at)
    last_used = _last_used(session, user_id)
    for app in found.values():
        app.name = client_name(session.get(Client, app.client_id))
        app.last_used_at = last_used.get(app.client_id)
    return sorted(found.values(), key=lambda app: -(app.last_used_at or app.created_at))


def connected_application(
    session: Session, user_id: str, client_id: str, now: int
) -> ConnectedApplication | None:
    """The user's connection to ``client_id``, or None (also for another user's client)."""
    for app in connected_applications(session, user_id, now):
        if app.client_id == client_id:
            return app
    return None


def disconnect(session: Session, user_id: str, client_id: str, *, now: int) -> int | None:
    """Revoke the user's grants (with their tokens) and consents of ``client_id``; the number of
    grants revoked, or None when the user has no live grant or consent of that client."""
    if connected_application(session, user_id, client_id, now) is None:
        return None
    grants = revoke_user_grants(session, user_id, now=now, reason=USER_REVOKED, client_id=client_id)
    consents = session.execute(
        update(Consent)
        .where(
            Consent.user_id == user_id,
            Consent.client_id == client_id,
            Consent.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    record_event(
        session,
        "application_revoked",
        at=now,
        client_id=client_id,
        subject=user_id,
        actor=user_id,
        via="applications_page",
        revoked_grants=grants,
        revoked_consents=int(getattr(consents, "rowcount", 0) or 0),
    )
    return grants
