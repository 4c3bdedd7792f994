"""Revoking what was granted (RFC 7009 §2; RFC 9700 §4.14.2; S15, S24): the one place that marks
grants, refresh tokens and access tokens revoked, used by the token endpoint (code replay,
refresh reuse), the revocation endpoint, client registration management and the CLI.

Rows are marked (``revoked_at``), never deleted: the resource server's revocation view
(:class:`authserver.oauth.tokens.AccessTokenRevocationView`) picks the access tokens up, and
the purge removes the rows once they expire. Helpers here never commit: the caller owns the
transaction.

Revoking a client or a user first locks its row, and also expires its codes not yet redeemed,
so that no token endpoint request in flight can mint a token the revocation does not see
(:mod:`authserver.storage.issuance_locks`, S95).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from authserver.storage.issuance_locks import lock_client_for_revocation, lock_user_for_revocation
from authserver.storage.models import AccessToken, AuthorizationCode, Grant, RefreshToken

#: ``expires_at`` given to the codes a revocation withdraws: in the past on every clock.
WITHDRAWN_CODE_EXPIRY = 0


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


def _withdraw_codes(session: Session, *conditions: Any) -> None:
    """Expire the unredeemed codes matching ``conditions`` (their redemption then fails)."""
    session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.consumed_at.is_(None), *conditions)
        .values(expires_at=WITHDRAWN_CODE_EXPIRY)
        .execution_options(synchronize_session=False)
    )


def revoke_client_grants(session: Session, client_id: str, *, now: int, reason: str) -> int:
    """Revoke every grant of a client and all its refresh and access tokens (those of no grant,
    such as client credentials tokens, too) and withdraw its unredeemed codes; the number of
    grants revoked."""
    lock_client_for_revocation(session, client_id)
    _withdraw_codes(session, AuthorizationCode.client_id == client_id)
    return _revoke_grants(session, Grant.client_id, "client_id", client_id, now=now, reason=reason)


def revoke_user_grants(
    session: Session, subject: str, *, now: int, reason: str, client_id: str | None = None
) -> int:
    """Revoke every live grant of ``subject`` (only those with ``client_id`` when given) with
    their tokens, and withdraw their unredeemed codes; the number of grants revoked."""
    lock_user_for_revocation(session, subject)
    codes = [AuthorizationCode.subject == subject]
    if client_id is not None:
        codes.append(AuthorizationCode.client_id == client_id)
    _withdraw_codes(session, *codes)
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
