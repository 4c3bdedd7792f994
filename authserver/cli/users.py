"""``charter users``: local accounts that log in on the login page (argon2id hashes only).

Names are found by their folded key (:func:`authserver.accounts.users.username_key`):
``charter users passwd Admin`` changes ``admin``, and ``users add`` refuses a name that differs
from an existing one only in case or width (exit 1), also when two commands race (the unique key
decides).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.accounts.passwords import new_password_problem
from authserver.accounts.users import (
    InvalidUsernameError,
    check_username,
    find_user_by_name,
    new_user,
    username_key,
)
from authserver.cli import output
from authserver.cli.context import open_server
from authserver.cli.lookups import require_user
from authserver.cli.output import (
    Column,
    confirm,
    emit_records,
    emit_result,
    fail,
    json_option,
    time_column,
    usage_error,
    yes_option,
)
from authserver.storage.audit import record_event
from authserver.storage.models import Client, Consent, LoginSession, User
from authserver.storage.revocation import revoke_user_grants

USER_COLUMNS = (
    Column("USERNAME", "username"),
    Column("ID", "id"),
    Column("ADMIN", "is_admin"),
    Column("STATUS", "status"),
    Column("MUST CHANGE PASSWORD", "must_change_password"),
    time_column("CREATED", "created_at"),
    time_column("PASSWORD CHANGED", "password_changed_at"),
    Column("NAME", "display_name"),
)


def user_record(user: User) -> dict[str, Any]:
    """A user as shown by the CLI (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "is_admin": user.is_admin,
        "status": "disabled" if user.disabled else "active",
        "must_change_password": user.must_change_password,
        "created_at": user.created_at,
        "password_changed_at": user.password_changed_at,
    }


def read_password(from_stdin: bool) -> str:
    """The new password: first line of stdin, or a hidden prompt asked twice."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif output.stdin_is_tty():
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, err=True, type=str
        )
    else:
        usage_error("no terminal to ask for the password; pipe it in with --password-stdin")
    problem = new_password_problem(password)
    if problem is not None:
        fail(problem)
    return password


@click.group()
def users() -> None:
    """Local user accounts."""


@users.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (scripts).")
@click.option("--admin", is_flag=True, help="Mark the user as an administrator.")
@click.option(
    "--must-change-password",
    is_flag=True,
    help="Make the password one-time: the first browser login asks for a new one.",
)
@json_option
def add_user(
    username: str, password_stdin: bool, admin: bool, must_change_password: bool, as_json: bool
) -> None:
    """Create USERNAME; asks for the password twice unless --password-stdin.

    Names compare ignoring case and width: a name differing from an existing one only so is
    refused.
    """
    try:
        name = check_username(username)
    except InvalidUsernameError as exc:
        usage_error(f"USERNAME: {exc}")
    server = open_server()
    with server.database.transaction() as session:
        _refuse_taken(session, name)
    password = read_password(password_stdin)
    user = new_user(
        server, name, password, is_admin=admin, must_change_password=must_change_password
    )
    try:
        with server.database.transaction() as session:
            session.add(user)
            session.flush()
            record_event(session, "user_created", at=user.created_at, subject=user.id, actor="cli")
    except IntegrityError:  # created meanwhile by another command: the unique key decided
        with server.database.transaction() as session:
            _refuse_taken(session, name)
        raise
    emit_result(f"created user {name} (id {user.id})", user_record(user), as_json=as_json)


def _refuse_taken(session: Session, name: str) -> None:
    """Exit 1 when ``name`` is a user's name (ignoring case and width) or a client id (S22)."""
    existing = find_user_by_name(session, name)
    if existing is not None:
        same = "already exists" if existing.username == name else f"exists as {existing.username!r}"
        fail(
            f"user {name!r} {same} (names ignore case and width)",
            "pick another name, or change that user's password with `charter users passwd`",
        )
    clash = select(Client.client_id).where(
        or_(Client.client_id == name, Client.client_id == username_key(name))
    )
    if session.scalars(clash).first() is not None:  # S22: names never equal a client id
        fail(f"username {name!r} collides with a client id", "pick another name")


@users.command("list")
@json_option
def list_users(as_json: bool) -> None:
    """Every user, by name."""
    server = open_server()
    with server.database.transaction() as session:
        rows = session.scalars(select(User).order_by(User.username)).all()
        records = [user_record(user) for user in rows]
    emit_records(
        records,
        USER_COLUMNS,
        as_json=as_json,
        empty="no users; add one with `charter users add NAME`",
    )


def _end_sessions(session: Session, user_id: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


@users.command("remove")
@click.argument("username")
@yes_option
@json_option
def remove_user(username: str, yes: bool, as_json: bool) -> None:
    """Delete USERNAME, end their logins and revoke their grants and consents."""
    server = open_server()
    with server.database.transaction() as session:
        user = require_user(session, username)
    confirm(f"remove user {user.username} and revoke everything they granted", yes=yes)
    now = server.now()
    with server.database.transaction() as session:
        revoked = revoke_user_grants(session, user.id, now=now, reason="user_removed")
        session.execute(delete(Consent).where(Consent.user_id == user.id))
        _end_sessions(session, user.id)
        session.execute(delete(User).where(User.id == user.id))
        record_event(session, "user_removed", at=now, subject=user.id, actor="cli")
    emit_result(
        f"removed user {user.username}; revoked {revoked} grant(s)",
        {"id": user.id, "username": user.username, "revoked_grants": revoked},
        as_json=as_json,
    )


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (scripts).")
@json_option
def passwd(username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a new password for USERNAME and end their browser logins.

    A one-time password (``must_change_password``) becomes an ordinary one.
    """
    server = open_server()
    with server.database.transaction() as session:
        user = require_user(session, username)
    password = read_password(password_stdin)
    password_hash = server.passwords.hash(password)
    now = server.now()
    with server.database.transaction() as session:
        row = session.get(User, user.id)
        if row is None:
            fail(f"user {username!r} was removed meanwhile")
        row.password_hash = password_hash
        row.password_changed_at = now
        row.must_change_password = False
        row.password_change_pending_hash = None
        row.password_change_expires_at = None
        _end_sessions(session, user.id)
        record_event(session, "password_changed", at=now, subject=user.id, actor="cli")
        record = user_record(row)
    emit_result(
        f"password of {user.username} changed; their browser logins were ended",
        {**record, "ended_logins": True},
        as_json=as_json,
    )
