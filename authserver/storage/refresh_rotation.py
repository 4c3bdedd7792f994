"""A refresh grant's lock, rotation and new rows in one PostgreSQL statement (RFC 6749 §6,
RFC 9700 §4.14.2; S24, S25, S57, S95).

On PostgreSQL every statement of a grant is a round trip to the server. Once the client's and
the user's locks are held (:mod:`authserver.storage.grant_prelude`, or
:func:`authserver.storage.issuance_locks.hold_client_and_user`),
what remains of a refresh grant — lock the grant row, read the user's state, retire the
presented token, store the access token's record and the successor refresh token — is done by
one statement with data-modifying ``WITH`` queries (PostgreSQL docs, "Data-Modifying
Statements in WITH"), instead of four:

* ``held``: the grant row ``FOR NO KEY UPDATE``, as
  :func:`~authserver.storage.token_rows.lock_grant` takes it (in READ COMMITTED a row locked
  after waiting is read in its latest committed version), with
  the user's ``disabled`` flag and names, read by this statement's snapshot, which begins after
  the user's lock is held;
* ``live``: that row when the grant may issue (not revoked, not expired, its user live for an
  ``authorization_code`` grant, its client there and enabled — read, like the user, after its
  lock is held) — the checks the grant makes in Python before it rotates;
* ``rotated``: the one atomic ``UPDATE`` that retires the presented token (only when ``live``
  has the row), so that N parallel refreshes give one success: the others wait for the first's
  row lock and then find ``rotated_at`` set;
* ``access`` and ``successor``: the new rows, only when ``rotated`` retired the token.

The statement returns the grant's state as :class:`~authserver.storage.token_rows.GrantState`
and whether the token was retired. When it was not, nothing was written and the caller
classifies the refusal (expired, revoked, reuse) as on SQLite. SQLite has no data-modifying
``WITH``; there the grant runs its statements one by one (each costs no round trip there).

Query helpers here never commit: the endpoint owns the transaction.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, Boolean, String, Text, bindparam, text
from sqlalchemy.orm import Session

from authserver.storage.token_rows import GrantState

_ROTATE_AND_ISSUE = text(
    """
    WITH held AS (
        SELECT grants.id, grants.client_id, grants.subject, grants.scope, grants.resource,
               grants.grant_type, grants.expires_at, grants.revoked_at,
               (SELECT users.disabled FROM users WHERE users.id = :user_id) AS user_disabled,
               (SELECT users.username FROM users WHERE users.id = grants.subject)
                   AS user_username,
               (SELECT users.display_name FROM users WHERE users.id = grants.subject)
                   AS user_display_name,
               (SELECT oauth_clients.disabled FROM oauth_clients
                WHERE oauth_clients.client_id = :client_id) AS client_disabled
        FROM grants
        WHERE grants.id = :grant_id
        FOR NO KEY UPDATE OF grants
    ), live AS (
        SELECT held.* FROM held
        WHERE held.revoked_at IS NULL
          AND held.expires_at > :now
          AND (held.grant_type <> 'authorization_code' OR held.user_disabled IS FALSE)
          AND held.client_disabled IS FALSE
    ), rotated AS (
        UPDATE refresh_tokens SET rotated_at = :now
        WHERE refresh_tokens.token_hash = :presented_hash
          AND refresh_tokens.rotated_at IS NULL
          AND refresh_tokens.revoked_at IS NULL
          AND refresh_tokens.expires_at > :now
          AND EXISTS (SELECT 1 FROM live)
        RETURNING refresh_tokens.token_hash
    ), access AS (
        INSERT INTO access_tokens
            (jti, grant_id, client_id, subject, scope, resource, issued_at, expires_at,
             revoked_at)
        SELECT :jti, live.id, live.client_id, live.subject, :scope, live.resource, :now,
               :access_expires_at, NULL
        FROM live, rotated
    ), successor AS (
        INSERT INTO refresh_tokens
            (token_hash, grant_id, client_id, subject, scope, resource, issued_at,
             expires_at, rotated_at, revoked_at)
        SELECT :successor_hash, live.id, live.client_id, live.subject, live.scope,
               live.resource, :now, LEAST(:successor_idle_expires_at, live.expires_at),
               NULL, NULL
        FROM live, rotated
        WHERE :with_successor
    )
    SELECT held.id, held.client_id, held.subject, held.scope, held.resource,
           held.grant_type, held.expires_at, held.revoked_at, held.user_disabled,
           held.user_username, held.user_display_name, held.client_disabled,
           (SELECT count(*) FROM rotated) AS rotated
    FROM held
    """
).bindparams(
    bindparam("client_id", type_=String),
    bindparam("user_id", type_=String),
    bindparam("grant_id", type_=String),
    bindparam("now", type_=BigInteger),
    bindparam("presented_hash", type_=String),
    bindparam("jti", type_=String),
    bindparam("scope", type_=Text),
    bindparam("access_expires_at", type_=BigInteger),
    bindparam("successor_hash", type_=String),
    bindparam("successor_idle_expires_at", type_=BigInteger),
    bindparam("with_successor", type_=Boolean),
)


class Rotation(NamedTuple):
    """What the statement found and did."""

    #: The grant as read under its lock; None when there is no such grant.
    grant: GrantState | None
    #: True when the client exists and is not disabled (read after its lock was held).
    client_live: bool
    #: True when the presented token was retired and the new rows stored.
    rotated: bool


class Successors(NamedTuple):
    """The rows a successful rotation stores (chosen before the statement runs)."""

    #: ``jti`` of the access token signed afterwards, and the scope it carries (S26).
    jti: str
    scope: str
    access_expires_at: int
    #: Hash of the new refresh token, or None when the client gets none.
    successor_hash: str | None
    #: ``now`` + the idle lifetime (capped by the grant's absolute expiry in the statement).
    successor_idle_expires_at: int


def rotate_and_issue(
    session: Session,
    *,
    client_id: str,
    grant_id: str,
    user_id: str,
    presented_hash: str,
    now: int,
    successors: Successors,
) -> Rotation:
    """Lock the grant, retire ``presented_hash`` and store ``successors`` in one statement
    (PostgreSQL only; hold the client's and the user's locks first)."""
    row = (
        session.connection()
        .execute(
            _ROTATE_AND_ISSUE,
            {
                "client_id": client_id,
                "user_id": user_id,
                "grant_id": grant_id,
                "now": now,
                "presented_hash": presented_hash,
                "jti": successors.jti,
                "scope": successors.scope,
                "access_expires_at": successors.access_expires_at,
                "successor_hash": successors.successor_hash or "",
                "successor_idle_expires_at": successors.successor_idle_expires_at,
                "with_successor": successors.successor_hash is not None,
            },
        )
        .first()
    )
    if row is None:
        return Rotation(None, False, False)
    *grant, client_disabled, rotated = row
    return Rotation(GrantState._make(grant), client_disabled is False, rotated == 1)
