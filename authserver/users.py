"""Local users who log in on the authorization server's login page."""

from __future__ import annotations

from authserver.context import AuthServer
from authserver.crypto import new_id
from authserver.storage.models import User


def new_user(server: AuthServer, username: str, password: str, *, is_admin: bool = False) -> User:
    """A user row (not yet added to a session) with an argon2 hash of ``password``."""
    now = server.now()
    return User(
        id=new_id(),
        username=username,
        password_hash=server.passwords.hash(password),
        is_admin=is_admin,
        disabled=False,
        created_at=now,
        password_changed_at=now,
    )
