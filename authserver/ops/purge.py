"""Batched TTL purge of expired rows (S64): codes, access-token rows, refresh tokens, grants,
consents, login sessions, rate counters, and audit events past ``audit_retention_seconds``;
also the MCP server's legacy HTTP+SSE streams left behind by a worker that died, with their
sessions (:func:`resourceserver.mcp.legacy_streams.purge_expired_streams`).

Each batch is its own short transaction (``DELETE … WHERE pk IN (SELECT pk … LIMIT n)``), so
the purge runs alongside traffic without holding SQLite's write lock for long. Used by
``charter tokens purge``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from authserver.context import AuthServer
from authserver.storage.models import (
    AccessToken,
    AuditEvent,
    AuthorizationCode,
    Consent,
    Grant,
    LoginSession,
    RateCounter,
    RefreshToken,
    UpstreamLogin,
)
from resourceserver.mcp.legacy_streams import purge_expired_streams

#: Consumed or expired codes are kept this long past expiry so that a late replay is still
#: recognised and revokes its grant (RFC 9700 §4.5, S15).
DEFAULT_CODE_RETENTION = 3600


def _purge_table(
    server: AuthServer, key: Any, expires_at: Any, cutoff: int, batch_size: int
) -> int:
    removed = 0
    while True:
        with server.database.transaction() as session:
            batch = select(key).where(expires_at < cutoff).limit(batch_size)
            ids = list(session.scalars(batch))
            if ids:
                session.execute(
                    delete(key.class_)
                    .where(key.in_(ids))
                    .execution_options(synchronize_session=False)
                )
        removed += len(ids)
        if len(ids) < batch_size:
            return removed


def purge_expired(
    server: AuthServer, batch_size: int = 1000, *, code_retention: int = DEFAULT_CODE_RETENTION
) -> dict[str, int]:
    """Delete expired rows of every authorization-server table; counts per table."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    now = server.now()
    plan: list[tuple[str, Any, Any, int]] = [
        (
            "authorization_codes",
            AuthorizationCode.code_hash,
            AuthorizationCode.expires_at,
            now - code_retention,
        ),
        ("access_tokens", AccessToken.jti, AccessToken.expires_at, now),
        ("refresh_tokens", RefreshToken.token_hash, RefreshToken.expires_at, now),
        ("grants", Grant.id, Grant.expires_at, now),
        ("consents", Consent.id, Consent.expires_at, now),
        ("login_sessions", LoginSession.id_hash, LoginSession.expires_at, now),
        ("rate_counters", RateCounter.key, RateCounter.expires_at, now),
        ("upstream_logins", UpstreamLogin.state_hash, UpstreamLogin.expires_at, now),
    ]
    retention = server.settings.audit_retention_seconds
    if retention > 0:
        plan.append(("audit_events", AuditEvent.id, AuditEvent.at, now - retention))
    counts = {
        name: _purge_table(server, key, expires_at, cutoff, batch_size)
        for name, key, expires_at, cutoff in plan
    }
    counts["mcp_legacy_streams"] = _purge_legacy_streams(server, batch_size)
    return counts


def _purge_legacy_streams(server: AuthServer, batch_size: int) -> int:
    removed = 0
    while True:
        with server.database.transaction() as session:
            batch = purge_expired_streams(session, server.now(), batch_size)
        removed += batch
        if batch < batch_size:
            return removed
