"""The console's users: list, add (with a one-time password), disable/enable, reset the
password (to a one-time one), make or stop being an admin, remove — the changes of
``charter users`` (:mod:`authserver.cli.users`) with the same revocations and audit events.

Passwords are never typed into the console: a new user and a reset get a random one-time
password, shown once, which the user's first browser login must replace (NIST SP 800-63B
§5.1.1.2). An admin cannot disable, remove, reset or demote their own account here, so that
the console cannot lock its last admin out.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.accounts.users import (
    InvalidUsernameError,
    check_username,
    find_user_by_name,
    new_user,
    username_key,
)
from authserver.console.actions import (
    Action,
    ActionRequest,
    Done,
    Question,
    Refused,
    Secret,
    audit,
)
from authserver.context import AuthServer
from authserver.storage.models import Client, Consent, LoginSession, User
from authserver.storage.revocation import revoke_user_grants

PAGE = "/users"
#: Bytes of entropy of a one-time password made here (as the first admin's).
ONE_TIME_BYTES = 18
ONE_TIME_ABOUT = (
    "Give it to the user now: it is shown only this once, and their first sign-in through an "
    "application asks them to choose their own."
)


def users_page(_server: AuthServer, session: Session, _query: Mapping[str, str]) -> dict[str, Any]:
    """Every user, by name."""
    from authserver.cli.users import user_record  # the CLI's record, loaded on the first page

    rows = session.scalars(select(User).order_by(User.username_key))
    return {"users": [user_record(row) for row in rows]}


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id) if user_id else None
    if user is None:
        raise Refused(404, "There is no such user.")
    return user


def _not_self(request: ActionRequest, doing: str) -> None:
    if request.target == request.admin.user_id:
        raise Refused(409, f"You cannot {doing} your own account here; ask another admin.")


def _end_logins(session: Session, user_id: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


def _checked_name(session: Session, username: str) -> str:
    try:
        name = check_username(username)
    except InvalidUsernameError as exc:
        raise Refused(400, f"That user name cannot be used: {exc}.") from None
    if find_user_by_name(session, name) is not None:
        raise Refused(409, "A user with that name exists (names ignore case and width).")
    clash = select(Client.client_id).where(
        or_(Client.client_id == name, Client.client_id == username_key(name))
    )
    if session.scalars(clash).first() is not None:  # S22: names never equal a client id
        raise Refused(409, "That name is a client id; pick another.")
    return name


def _ask_add(_server: AuthServer, session: Session, request: ActionRequest) -> str:
    name = _checked_name(session, request.target)
    role = "an administrator" if request.options.get("admin") == "yes" else "a user"
    return f"Add {role} called {name} with a one-time password?"


def _add(server: AuthServer, request: ActionRequest) -> Done:
    with server.database.transaction() as session:
        name = _checked_name(session, request.target)
    password = secrets.token_urlsafe(ONE_TIME_BYTES)
    admin = request.options.get("admin") == "yes"
    user = new_user(server, name, password, is_admin=admin, must_change_password=True)
    try:
        with server.database.transaction() as session:
            session.add(user)
            session.flush()
            audit(session, request, "user_created", subject=user.id, is_admin=admin)
    except IntegrityError:  # added meanwhile: the unique key decided
        raise Refused(409, "A user with that name exists (names ignore case and width).") from None
    return Done(
        f"User {name} added.", Secret(f"One-time password of {name}", password, ONE_TIME_ABOUT)
    )


def _asker(template: str, doing: str | None = None) -> Question:
    """The question of an action on one user (refused on the admin's own account when
    ``doing`` names what may not be done to it)."""

    def ask(_server: AuthServer, session: Session, request: ActionRequest) -> str:
        if doing is not None:
            _not_self(request, doing)
        return template.format(name=_user(session, request.target).username)

    return ask


def _set_disabled(server: AuthServer, request: ActionRequest, disabled: bool) -> Done:
    if disabled:
        _not_self(request, "disable")
    with server.database.transaction() as session:
        user = _user(session, request.target)
        user.disabled = disabled
        revoked = 0
        if disabled:
            revoked = revoke_user_grants(session, user.id, now=request.now, reason="user_disabled")
            _end_logins(session, user.id)
        event = "user_disabled" if disabled else "user_enabled"
        audit(session, request, event, subject=user.id, revoked_grants=revoked)
    if disabled:
        return Done(f"User disabled; signed out and {revoked} grant(s) revoked.")
    return Done("User enabled.")


def _disable(server: AuthServer, request: ActionRequest) -> Done:
    return _set_disabled(server, request, True)


def _enable(server: AuthServer, request: ActionRequest) -> Done:
    return _set_disabled(server, request, False)


def _reset_password(server: AuthServer, request: ActionRequest) -> Done:
    _not_self(request, "reset the password of")
    password = secrets.token_urlsafe(ONE_TIME_BYTES)
    password_hash = server.passwords.hash(password)
    with server.database.transaction() as session:
        user = _user(session, request.target)
        user.password_hash = password_hash
        user.password_changed_at = request.now
        user.must_change_password = True
        user.password_change_pending_hash = None
        user.password_change_expires_at = None
        _end_logins(session, user.id)
        audit(session, request, "password_reset", subject=user.id)
        name = user.username
    secret = Secret(f"One-time password of {name}", password, ONE_TIME_ABOUT)
    return Done(f"Password of {name} reset; their browser logins were ended.", secret)


def _set_admin(server: AuthServer, request: ActionRequest, admin: bool) -> Done:
    if not admin:
        _not_self(request, "demote")
    with server.database.transaction() as session:
        user = _user(session, request.target)
        user.is_admin = admin
        audit(
            session,
            request,
            "user_admin_granted" if admin else "user_admin_revoked",
            subject=user.id,
        )
    return Done("User is an administrator." if admin else "User is no longer an administrator.")


def _make_admin(server: AuthServer, request: ActionRequest) -> Done:
    return _set_admin(server, request, True)


def _revoke_admin(server: AuthServer, request: ActionRequest) -> Done:
    return _set_admin(server, request, False)


def _remove(server: AuthServer, request: ActionRequest) -> Done:
    _not_self(request, "remove")
    with server.database.transaction() as session:
        user = _user(session, request.target)
        revoked = revoke_user_grants(session, user.id, now=request.now, reason="user_removed")
        session.execute(delete(Consent).where(Consent.user_id == user.id))
        _end_logins(session, user.id)
        session.execute(delete(User).where(User.id == user.id))
        audit(session, request, "user_removed", subject=user.id, revoked_grants=revoked)
    return Done(f"User removed; {revoked} grant(s) revoked.")


ACTIONS = (
    Action("user-add", PAGE, _ask_add, _add, "User added.", options=("admin",)),
    Action(
        "user-disable",
        PAGE,
        _asker("Disable {name}, sign them out and revoke their grants?", "disable"),
        _disable,
        "User disabled, signed out, grants revoked.",
    ),
    Action("user-enable", PAGE, _asker("Enable {name} again?"), _enable, "User enabled."),
    Action(
        "user-reset-password",
        PAGE,
        _asker(
            "Reset the password of {name} to a one-time password and sign them out?",
            "reset the password of",
        ),
        _reset_password,
        "Password reset.",
    ),
    Action(
        "user-make-admin",
        PAGE,
        _asker("Make {name} an administrator?"),
        _make_admin,
        "User is an administrator.",
    ),
    Action(
        "user-revoke-admin",
        PAGE,
        _asker("Stop {name} being an administrator?", "demote"),
        _revoke_admin,
        "User is no longer an administrator.",
    ),
    Action(
        "user-remove",
        PAGE,
        _asker("Remove {name} and revoke everything they granted?", "remove"),
        _remove,
        "User removed; their grants were revoked.",
    ),
)
