"""Signing out: ending a browser login session for good (OpenID Connect RP-Initiated Logout 1.0
§2 from the user's side — the server asks before it signs out; RFC 6265 §3.1 for removing the
cookie; S51).

A sign-out deletes the ``login_sessions`` row, so the old cookie value is worthless even when a
copy of it is sent again; the response also removes the cookie from the browser. Each ended
session is recorded as a ``logout`` audit event. Tokens already issued to applications are not
touched: they belong to grants, which ``charter tokens revoke`` and ``charter consents revoke``
end.

The sign-out form of ``/logout`` carries a CSRF token derived from the session cookie (a
SHA-256 of a fixed label and the cookie value): only a page served to the browser holding that
HttpOnly cookie can know it, and it dies with the session. The consent page's sign-out form uses
its pending request's CSRF token instead (:mod:`authserver.browser.pending`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.storage.audit import record_event
from authserver.storage.crypto import hash_token, token_matches
from authserver.storage.models import LoginSession

#: Separates the sign-out token from every other use of the session cookie's hash.
_FORM_LABEL = "charter-logout-form:"


def logout_token(session_cookie: str) -> str:
    """The CSRF token of the ``/logout`` form for the login behind ``session_cookie``."""
    return hash_token(_FORM_LABEL + session_cookie)


def logout_token_matches(session_cookie: str, token: str | None) -> bool:
    """Constant-time check of a posted sign-out token against the session cookie."""
    if not token or len(token) > 128:
        return False
    return token_matches(token, hash_token(logout_token(session_cookie)))


def end_login_sessions(
    session: Session,
    server: AuthServer,
    session_hashes: Iterable[str],
    *,
    ip: str,
    client_id: str | None = None,
    via: str,
) -> list[str]:
    """Delete the login sessions stored under ``session_hashes``; the ids of their users.

    Safe when two sign-outs race: a row is deleted (and its ``logout`` recorded) only once.
    """
    ended: list[str] = []
    now = server.now()
    for session_hash in dict.fromkeys(session_hashes):
        user_id = session.scalar(
            select(LoginSession.user_id).where(LoginSession.id_hash == session_hash)
        )
        if user_id is None:
            continue
        deleted = session.execute(
            delete(LoginSession).where(LoginSession.id_hash == session_hash),
            execution_options={"synchronize_session": "fetch"},
        )
        if getattr(deleted, "rowcount", 0):
            ended.append(user_id)
            record_event(
                session, "logout", at=now, client_id=client_id, subject=user_id, ip=ip, via=via
            )
    return ended
