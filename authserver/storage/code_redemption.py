"""An authorization code's redemption and the rows it creates in one PostgreSQL statement
(RFC 6749 §4.1.3, RFC 9700 §4.5; S15, S57, S95).

On PostgreSQL every statement is a round trip. Once the client's and the user's locks are held
(:mod:`authserver.storage.grant_prelude`), what remains of a code exchange — read the client's
and the user's states under the locks, consume the code, store the grant, the access token's
record, the refresh token and the ``grant_created`` audit event — is one statement with
data-modifying ``WITH`` queries (PostgreSQL docs, "Data-Modifying Statements in WITH") instead
of six:

* ``state``: the client's ``disabled`` flag and the user's state, read by this statement's
  snapshot, which begins after both locks are held;
* ``consumed``: the one atomic ``UPDATE`` that redeems the code, only when the client and the
  user are live, so that N parallel redemptions give one success (the others wait for the
  first's row lock and then find ``consumed_at`` set);
* ``made``, ``access``, ``refresh``, ``audit``: the new rows, only when ``consumed`` redeemed
  the code (each reads ``made``, so none exists without the grant).

When the code was not redeemed nothing was written, and the caller classifies the refusal
(expired, replayed) as on SQLite, which has no data-modifying ``WITH`` and runs the statements
one by one (each costs no round trip there).

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Boolean, String, Text, bindparam, text
from sqlalchemy.orm import Session

from authserver.storage.token_rows import NewGrant, UserState

_REDEEM_AND_ISSUE = text(
    """
    WITH state AS (
        SELECT (SELECT oauth_clients.disabled FROM oauth_clients
                WHERE oauth_clients.client_id = :client_id) AS client_disabled,
               (SELECT users.disabled FROM users WHERE users.id = :subject) AS user_disabled,
               (SELECT users.username FROM users WHERE users.id = :subject) AS username,
               (SELECT users.display_name FROM users WHERE users.id = :subject)
                   AS display_name
    ), consumed AS (
        UPDATE authorization_codes SET consumed_at = :now
        WHERE authorization_codes.code_hash = :code_hash
          AND authorization_codes.consumed_at IS NULL
          AND authorization_codes.expires_at > :now
          AND EXISTS (
              SELECT 1 FROM state
              WHERE state.client_disabled IS FALSE AND state.user_disabled IS FALSE
          )
        RETURNING authorization_codes.code_hash
    ), made AS (
        INSERT INTO grants
            (id, client_id, subject, scope, resource, grant_type, code_hash, created_at,
             expires_at, revoked_at, revoked_reason)
        SELECT :grant_id, :client_id, :subject, :grant_scope, :resource, 'authorization_code',
               consumed.code_hash, :now, :grant_expires_at, NULL, NULL
        FROM consumed
        RETURNING grants.id
    ), access AS (
        INSERT INTO access_tokens
            (jti, grant_id, client_id, subject, scope, resource, issued_at, expires_at,
             revoked_at)
        SELECT :jti, made.id, :client_id, :subject, :scope, :resource, :now,
               :access_expires_at, NULL
        FROM made
    ), refresh AS (
        INSERT INTO refresh_tokens
            (token_hash, grant_id, client_id, subject, scope, resource, issued_at,
             expires_at, rotated_at, revoked_at)
        SELECT :refresh_hash, made.id, :client_id, :subject, :grant_scope, :resource, :now,
               :refresh_expires_at, NULL, NULL
        FROM made
        WHERE :with_refresh
    ), audit AS (
        INSERT INTO audit_events (at, event, client_id, subject, ip, request_id, detail)
        SELECT :now, 'grant_created', :client_id, :subject, :ip, :request_id,
               CAST(:detail AS json)
        FROM made
        RETURNING audit_events.id
    )
    SELECT state.client_disabled, state.user_disabled, state.username, state.display_name,
           (SELECT count(*) FROM consumed) AS consumed,
           (SELECT audit.id FROM audit) AS audit_id
    FROM state
    """
).bindparams(
    *(
        bindparam(name, type_=String)
        for name in (
            "client_id",
            "subject",
            "code_hash",
            "grant_id",
            "resource",
            "jti",
            "refresh_hash",
            "ip",
            "request_id",
            "detail",
        )
    ),
    *(bindparam(name, type_=Text) for name in ("grant_scope", "scope")),
    *(
        bindparam(name, type_=BigInteger)
        for name in ("now", "grant_expires_at", "access_expires_at", "refresh_expires_at")
    ),
    bindparam("with_refresh", type_=Boolean),
)


class Issued(NamedTuple):
    """The rows a successful redemption stores besides the grant (chosen beforehand)."""

    #: ``jti`` of the access token signed afterwards, the scope it carries (S26) and its expiry.
    jti: str
    scope: str
    access_expires_at: int
    #: Hash of the refresh token and its expiry, or None when the client gets none.
    refresh_hash: str | None
    refresh_expires_at: int


class AuditFields(NamedTuple):
    """The ``grant_created`` event's own columns (the rest are the grant's)."""

    ip: str | None
    request_id: str | None
    detail: dict[str, Any]


class Redemption(NamedTuple):
    """What the statement found and did."""

    #: True when the client exists and is not disabled (read after its lock was held).
    client_live: bool
    #: The user's state (None: no such user), read after its lock was held.
    user: UserState | None
    #: True when the code was redeemed and the rows stored.
    consumed: bool
    #: Id of the stored ``grant_created`` audit event (None when nothing was stored).
    audit_id: int | None


def redeem_and_issue(
    session: Session,
    *,
    grant: NewGrant,
    now: int,
    issued: Issued,
    audit: AuditFields,
) -> Redemption:
    """Consume the code ``grant.code_hash`` and store ``grant`` with its tokens and audit event
    in one statement (PostgreSQL only; hold the client's and the user's locks first)."""
    row = (
        session.connection()
        .execute(
            _REDEEM_AND_ISSUE,
            {
                "client_id": grant.client_id,
                "subject": grant.subject,
                "code_hash": grant.code_hash,
                "grant_id": grant.id,
                "grant_scope": grant.scope,
                "resource": grant.resource,
                "grant_expires_at": grant.expires_at,
                "now": now,
                "jti": issued.jti,
                "scope": issued.scope,
                "access_expires_at": issued.access_expires_at,
                "refresh_hash": issued.refresh_hash or "",
                "refresh_expires_at": issued.refresh_expires_at,
                "with_refresh": issued.refresh_hash is not None,
                "ip": audit.ip,
                "request_id": audit.request_id,
                "detail": json.dumps(audit.detail),
            },
        )
        .one()
    )
    client_disabled, user_disabled, username, display_name, consumed, audit_id = row
    user = UserState(user_disabled, username, display_name) if user_disabled is not None else None
    return Redemption(client_disabled is False, user, consumed == 1, audit_id)
