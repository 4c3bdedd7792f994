"""Changing a one-time password during the browser login (NIST SP 800-63B §5.1.1.2: a
password chosen by someone else, such as the first admin's printed one, is replaced by the
user's own before it grants anything).

A user with ``must_change_password`` who types the right password on a login form gets no login
session. Instead the user row remembers the pending authorization request that form belonged to
(its hash, ``password_change_pending_hash``) for :data:`PASSWORD_CHANGE_TTL` seconds: that is
the short-lived proof of the successful login. The change page is shown only to the browser
holding that request (browser-binding cookie) with its current CSRF token, so it does not ask
for the old password again. Setting the new password is one conditional ``UPDATE`` that also
consumes the proof, so of two posts racing on one proof exactly one wins; only then is the
login session created. A later login on another request replaces the proof; ``charter users
passwd`` clears the flag and the proof.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authserver.context import AuthServer
from authserver.storage.models import LoginSession, User

#: How long the change page may set the new password after the one-time password was typed.
PASSWORD_CHANGE_TTL = 600


def begin_password_change(
    session: Session, server: AuthServer, user_id: str, pending_hash: str
) -> None:
    """Remember that ``user_id``'s one-time password was just verified on ``pending_hash``."""
    session.execute(
        update(User)
        .where(User.id == user_id, User.must_change_password.is_(True))
        .values(
            password_change_pending_hash=pending_hash,
            password_change_expires_at=server.now() + PASSWORD_CHANGE_TTL,
        )
    )


def user_changing_password(session: Session, server: AuthServer, pending_hash: str) -> User | None:
    """The enabled user whose one-time password was verified on ``pending_hash``, if unexpired."""
    return session.scalars(
        select(User).where(
            User.password_change_pending_hash == pending_hash,
            User.must_change_password.is_(True),
            User.disabled.is_(False),
            User.password_change_expires_at > server.now(),
        )
    ).first()


def complete_password_change(
    session: Session, server: AuthServer, user_id: str, pending_hash: str, password_hash: str
) -> bool:
    """Set the new password, consuming the proof; False when it was used or expired meanwhile.

    Ends any login session of the user (there should be none: the flag prevents them).
    """
    now = server.now()
    changed = session.execute(
        update(User)
        .where(
            User.id == user_id,
            User.password_change_pending_hash == pending_hash,
            User.must_change_password.is_(True),
            User.disabled.is_(False),
            User.password_change_expires_at > now,
        )
        .values(
            password_hash=password_hash,
            password_changed_at=now,
            must_change_password=False,
            password_change_pending_hash=None,
            password_change_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
    return True
