"""``charter users``: local accounts that log in on the login page (argon2id hashes only)."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authserver import cli_output
from authserver.audit import record_event
from authserver.cli import open_server
from authserver.cli_output import (
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
from authserver.storage.models import Client, Consent, Grant, LoginSession, User
from authserver.tokens import revoke_grant
from authserver.users import new_user

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
USER_COLUMNS = (
    Column("USERNAME", "username"),
    Column("ID", "id"),
    Column("ADMIN", "is_admin"),
    Column("STATUS", "status"),
    time_column("CREATED", "created_at"),
    time_column("PASSWORD CHANGED", "password_changed_at"),
)


def user_record(user: User) -> dict[str, Any]:
    """A user as shown by the CLI (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "is_admin": user.is_admin,
        "status": "disabled" if user.disabled else "active",
        "created_at": user.created_at,
        "password_changed_at": user.password_changed_at,
    }


def find_user(session: Session, username: str) -> User:
    """The user called ``username`` (or with that id); exit 1 when there is none."""
    user = session.scalars(select(User).where(User.username == username)).first()
    user = user or session.get(User, username)
    if user is None:
        fail(f"no user {username!r}", "list the users with `charter users list`")
    return user


def read_password(from_stdin: bool) -> str:
    """The new password: first line of stdin, or a hidden prompt asked twice."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif cli_output.stdin_is_tty():
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, err=True, type=str
        )
    else:
        usage_error("no terminal to ask for the password; pipe it in with --password-stdin")
    if len(password) < MIN_PASSWORD_LENGTH:
        fail(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        fail(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


@click.group()
def users() -> None:
    """Local user accounts."""


@users.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (scripts).")
@click.option("--admin", is_flag=True, help="Mark the user as an administrator.")
@json_option
def add_user(username: str, password_stdin: bool, admin: bool, as_json: bool) -> None:
    """Create USERNAME; asks for the password twice unless --password-stdin."""
    if not username or len(username) > 128 or any(ch.isspace() for ch in username):
        usage_error("USERNAME must be 1-128 characters without spaces")
    server = open_server()
    with server.database.transaction() as session:
        if session.scalars(select(User.id).where(User.username == username)).first():
            fail(f"user {username!r} already exists", "change it with `charter users passwd`")
        if session.get(Client, username) is not None:  # S22: names never equal a client id
            fail(f"username {username!r} collides with a client id", "pick another name")
    password = read_password(password_stdin)
    user = new_user(server, username, password, is_admin=admin)
    with server.database.transaction() as session:
        session.add(user)
        record_event(session, "user_created", at=user.created_at, subject=user.id, actor="cli")
    emit_result(f"created user {username} (id {user.id})", user_record(user), as_json=as_json)


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
        user = find_user(session, username)
    confirm(f"remove user {user.username} and revoke everything they granted", yes=yes)
    now = server.now()
    with server.database.transaction() as session:
        grant_ids = session.scalars(
            select(Grant.id).where(Grant.subject == user.id, Grant.revoked_at.is_(None))
        ).all()
        for grant_id in grant_ids:
            revoke_grant(session, grant_id, now=now, reason="user_removed")
        session.execute(delete(Consent).where(Consent.user_id == user.id))
        _end_sessions(session, user.id)
        session.execute(delete(User).where(User.id == user.id))
        record_event(session, "user_removed", at=now, subject=user.id, actor="cli")
    emit_result(
        f"removed user {user.username}; revoked {len(grant_ids)} grant(s)",
        {"id": user.id, "username": user.username, "revoked_grants": len(grant_ids)},
        as_json=as_json,
    )


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (scripts).")
@json_option
def passwd(username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a new password for USERNAME and end their browser logins."""
    server = open_server()
    with server.database.transaction() as session:
        user = find_user(session, username)
    password = read_password(password_stdin)
    password_hash = server.passwords.hash(password)
    now = server.now()
    with server.database.transaction() as session:
        row = session.get(User, user.id)
        if row is None:
            fail(f"user {username!r} was removed meanwhile")
        row.password_hash = password_hash
        row.password_changed_at = now
        _end_sessions(session, user.id)
        record_event(session, "password_changed", at=now, subject=user.id, actor="cli")
        record = user_record(row)
    emit_result(
        f"password of {user.username} changed; their browser logins were ended",
        {**record, "ended_logins": True},
        as_json=as_json,
    )
