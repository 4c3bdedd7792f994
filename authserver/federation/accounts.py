"""Local users behind upstream accounts (OpenID Connect Core §5.7; S78).

An upstream account is the pair (issuer, ``sub``): the only stable, provider-unique identifier
(§5.7: ``email`` and ``preferred_username`` may change and are not unique). A sign-in finds its
user through that pair in ``user_links`` and nothing else: an e-mail address, verified or not, or
a user name equal to a local user's never links to that user. An unknown pair creates a new user
just in time (its name from ``preferred_username`` or the e-mail's local part, made unique by a
suffix), or is refused when the provider only admits pre-provisioned users
(``charter idps link``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authserver.accounts.users import (
    InvalidUsernameError,
    check_username,
    names_a_user,
    username_key,
)
from authserver.storage.crypto import new_id
from authserver.storage.models import Client, User, UserLink

#: Stored instead of a password hash: no argon2 hash has this shape, so no password verifies.
NO_PASSWORD = "!upstream"  # noqa: S105 - a marker, not a password
MAX_SUFFIX = 1000


def find_link(session: Session, issuer: str, subject: str) -> UserLink | None:
    """The link of the upstream account (issuer, ``sub``)."""
    query = select(UserLink).where(UserLink.issuer == issuer, UserLink.subject == subject)
    return session.scalars(query).first()


def _base_name(claims: dict[str, Any]) -> str:
    """``preferred_username``, else ``nickname``, else the e-mail's local part (a name only:
    it never links), else ``user``."""
    email = claims.get("email")
    local_part = email.partition("@")[0] if isinstance(email, str) else None
    for candidate in (claims.get("preferred_username"), claims.get("nickname"), local_part):
        if isinstance(candidate, str):
            try:
                return check_username(candidate[:100])
            except InvalidUsernameError:
                continue
    return "user"


def _taken(session: Session, name: str) -> bool:
    if names_a_user(session, name):
        return True
    clash = select(Client.client_id).where(Client.client_id.in_([name, username_key(name)]))
    return session.scalars(clash).first() is not None  # S22: a name never equals a client id


def unique_username(session: Session, claims: dict[str, Any]) -> str:
    """A free user name from the claims: ``alice``, else ``alice-2``, ``alice-3`` …"""
    base = _base_name(claims)
    for number in range(1, MAX_SUFFIX):
        name = base if number == 1 else f"{base}-{number}"
        if not _taken(session, name):
            return name
    return f"{base}-{new_id()[:12]}"


def display_name_of(claims: dict[str, Any]) -> str | None:
    """The ``name`` claim, trimmed to what the column holds."""
    name = claims.get("name")
    return name.strip()[:256] or None if isinstance(name, str) else None


def create_linked_user(
    session: Session, issuer: str, claims: dict[str, Any], now: int
) -> tuple[User, UserLink]:
    """A new user (no password) and its link to (issuer, ``sub``)."""
    name = unique_username(session, claims)
    user = User(
        id=new_id(),
        username=name,
        username_key=username_key(name),
        password_hash=NO_PASSWORD,
        is_admin=False,
        disabled=False,
        must_change_password=False,
        created_at=now,
        password_changed_at=now,
        display_name=display_name_of(claims),
    )
    session.add(user)
    session.flush()
    link = new_link(user.id, issuer, str(claims["sub"]), now)
    session.add(link)
    session.flush()
    return user, link


def new_link(user_id: str, issuer: str, subject: str, now: int) -> UserLink:
    """A link row of ``user_id`` to (issuer, ``sub``)."""
    return UserLink(
        id=new_id(),
        user_id=user_id,
        issuer=issuer,
        subject=subject,
        email=None,
        scope_limit=None,
        created_at=now,
        last_login_at=None,
    )


def user_scope_limit(session: Session, user_id: str) -> set[str] | None:
    """The scopes ``user_id`` may grant by its links' last sign-ins; None for no limit."""
    limits = session.scalars(
        select(UserLink.scope_limit).where(
            UserLink.user_id == user_id, UserLink.scope_limit.is_not(None)
        )
    ).all()
    if not limits:
        return None
    allowed: set[str] = set()
    for limit in limits:
        allowed.update((limit or "").split())
    return allowed
