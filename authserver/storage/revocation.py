"""Revoking what was granted (RFC 7009 §2; RFC 9700 §4.14.2; S15, S24): the one place that marks
grants, refresh tokens and access tokens revoked, used by the token endpoint (code replay,
refresh reuse), the revocation endpoint, client registration management and the CLI.

Rows are marked (``revoked_at``), never deleted: the resource server's revocation view
(:class:`authserver.oauth.tokens.AccessTokenRevocationView`) picks the access tokens up, and
the purge removes the rows once they expire. Helpers here never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from authserver.storage.models import AccessToken, Grant, RefreshToken


def _changed(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _revoke_grants(
    session: Session,
    grant_column: InstrumentedAttribute[str],
    token_column_name: str,
    value: str,
    *,
    now: int,
    reason: str,
) -> int:
    """Revoke the live grants where ``grant_column == value`` and the tokens where
    ``<token_column_name> == value``; the number of grants revoked."""
    grants = session.execute(
        update(Grant)
        .where(grant_column == value, Grant.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    for model in (RefreshToken, AccessToken):
        session.execute(
            update(model)
            .where(getattr(model, token_column_name) == value, model.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return _changed(grants)


def revoke_grant(session: Session, grant_id: str, *, now: int, reason: str) -> None:
    """Revoke a grant with every refresh and access token it produced (S15, S24)."""
    _revoke_grants(session, Grant.id, "grant_id", grant_id, now=now, reason=reason)


def revoke_client_grants(session: Session, client_id: str, *, now: int, reason: str) -> int:
    """Revoke every grant of a client and all its refresh and access tokens (those of no grant,
    such as client credentials tokens, too); the number of grants revoked."""
    return _revoke_grants(session, Grant.client_id, "client_id", client_id, now=now, reason=reason)


def revoke_user_grants(
    session: Session, subject: str, *, now: int, reason: str, client_id: str | None = None
) -> int:
    """Revoke every live grant of ``subject`` (only those with ``client_id`` when given) with
    their tokens; the number of grants revoked."""
    query = select(Grant.id).where(Grant.subject == subject, Grant.revoked_at.is_(None))
    if client_id is not None:
        query = query.where(Grant.client_id == client_id)
    grant_ids = session.scalars(query).all()
    for grant_id in grant_ids:
        revoke_grant(session, grant_id, now=now, reason=reason)
    return len(grant_ids)


def revoke_access_token(session: Session, jti: str, *, now: int) -> bool:
    """Mark one access token revoked; True when a live row changed."""
    result = session.execute(
        update(AccessToken)
        .where(AccessToken.jti == jti, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(_changed(result))
