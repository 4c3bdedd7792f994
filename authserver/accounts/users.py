"""Local users who log in on the authorization server's login page, and how their names compare.

User names compare the way people read them (in the spirit of RFC 8265 §3.3, the PRECIS
"UsernameCaseMapped" profile): :func:`username_key` trims surrounding whitespace, applies
Unicode NFKC normalization (UAX #15: ``Admin`` in full-width letters, ligatures and other
compatibility forms become their plain letters) and full case folding (Unicode §5.18,
``str.casefold``: ``Admin`` → ``admin``, ``Straße`` → ``strasse``), then NFKC again (folding
can denormalize).
The key is stored in ``users.username_key`` under a unique constraint, so two users can never
have names that differ only in case or width, even when created at the same moment; the name
as typed is kept in ``users.username`` for display. Look-alikes from different scripts (a
Cyrillic a for a Latin a) are not folded together (UTS #39 confusables are out of scope).
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from authserver.accounts.passwords import Passwords
from authserver.storage.crypto import new_id
from authserver.storage.models import User

#: Longest user name, in characters (as typed, after trimming).
MAX_USERNAME_LENGTH = 128
#: Longest folded key (folding may lengthen a name; the column holds this many characters).
MAX_USERNAME_KEY_LENGTH = 512


#: Longest name a lookup considers (a typed name may carry surrounding whitespace).
MAX_TYPED_USERNAME_LENGTH = 4 * MAX_USERNAME_LENGTH


class PasswordsAndClock(Protocol):
    """What making a user needs of the server: its password hasher and its clock."""

    @property
    def passwords(self) -> Passwords: ...

    def now(self) -> int: ...


class InvalidUsernameError(ValueError):
    """A user name that cannot be used; the message says what is wrong."""


def username_key(username: str) -> str:
    """The form user names are compared and kept unique by: trimmed, NFKC, case-folded."""
    normalized = unicodedata.normalize("NFKC", username.strip())
    # Stripped again: NFKC turns some characters (U+00A8, U+00B4, ...) into a space and a
    # combining mark, and a key must be its own key.
    return unicodedata.normalize("NFKC", normalized.casefold()).strip()


def check_username(username: str) -> str:
    """``username`` trimmed of surrounding whitespace, or :class:`InvalidUsernameError`."""
    name = username.strip()
    if not name or len(name) > MAX_USERNAME_LENGTH:
        raise InvalidUsernameError(f"a user name has 1-{MAX_USERNAME_LENGTH} characters")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidUsernameError("a user name has no spaces or control characters")
    if len(username_key(name)) > MAX_USERNAME_KEY_LENGTH:
        raise InvalidUsernameError("this user name is too long once normalized")
    return name


def find_user_by_name(session: Session, name: str) -> User | None:
    """The user whose name equals ``name`` ignoring case, width and surrounding spaces.

    A name no user can have (empty, too long, or with a NUL, which PostgreSQL cannot even
    compare) finds nobody.
    """
    if not name.strip() or len(name) > MAX_TYPED_USERNAME_LENGTH or "\x00" in name:
        return None
    return session.scalars(select(User).where(User.username_key == username_key(name))).first()


def find_user(session: Session, name_or_id: str) -> User | None:
    """The user called ``name_or_id`` (as :func:`find_user_by_name`), else the one with that id."""
    return find_user_by_name(session, name_or_id) or session.get(User, name_or_id)


#: Built once: the client credentials grant runs it on every request (building the statement
#: cost more than executing it).
_NAMES_A_USER = (
    select(User.id)
    .where(or_(User.id == bindparam("candidate"), User.username_key == bindparam("key")))
    .limit(1)
)


def names_a_user(session: Session, candidate: str) -> bool:
    """True when ``candidate`` equals some user's id or name (S22: a client id never may)."""
    found = session.scalars(
        _NAMES_A_USER, {"candidate": candidate, "key": username_key(candidate)}
    ).first()
    return found is not None


def new_user(
    server: PasswordsAndClock,
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    must_change_password: bool = False,
) -> User:
    """A user row (not yet added to a session) with an argon2 hash of ``password``.

    ``username`` is checked with :func:`check_username` (trimmed; its folded key is stored for
    comparisons). ``must_change_password`` makes the browser login ask for a new password
    before it signs the user in (the first admin's one-time password).
    """
    name = check_username(username)
    now = server.now()
    return User(
        id=new_id(),
        username=name,
        username_key=username_key(name),
        password_hash=server.passwords.hash(password),
        is_admin=is_admin,
        disabled=False,
        must_change_password=must_change_password,
        created_at=now,
        password_changed_at=now,
    )
