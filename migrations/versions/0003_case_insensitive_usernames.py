"""user names compare case-insensitively; one-time passwords must be changed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 07:00:00.000000

Adds ``users.username_key`` (the name trimmed, NFKC-normalized and case-folded, unique; it
replaces the unique constraint on ``users.username``), ``users.must_change_password`` (false
for existing users) and the two columns of a pending one-time-password change.

Existing users get their key computed here. When two of them have names that differ only in
case or width (``Admin`` and ``admin``), the upgrade stops and changes nothing: merging them
would let one user's name log in to the other's account. The message names the users and what
to do (rename or remove all but one, then start again).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from authserver.storage.schema import MigrationRefusedError

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: Length of the ``username_key`` column.
MAX_KEY_LENGTH = 512


class UsernameCollisionError(MigrationRefusedError):
    """Existing user names that become equal once case and width are ignored."""


class UsernameTooLongError(MigrationRefusedError):
    """Existing user names whose key would not fit its column."""


def username_key(username: str) -> str:
    """Frozen copy of :func:`authserver.accounts.users.username_key` as of this revision."""
    normalized = unicodedata.normalize("NFKC", username.strip())
    # Stripped again: NFKC turns some characters (U+00A8, U+00B4, ...) into a space and a
    # combining mark, and a key must be its own key.
    return unicodedata.normalize("NFKC", normalized.casefold()).strip()


def _existing_keys() -> dict[str, str]:
    """User id -> key for every existing user; raises when two keys are equal."""
    users = sa.table("users", sa.column("id", sa.String), sa.column("username", sa.String))
    rows = op.get_bind().execute(sa.select(users.c.id, users.c.username)).all()
    too_long = sorted(
        (username, user_id)
        for user_id, username in rows
        if len(username_key(username)) > MAX_KEY_LENGTH
    )
    if too_long:
        listed = "; ".join(f"{name!r} (id {user_id})" for name, user_id in too_long)
        raise UsernameTooLongError(
            f"these user names are longer than {MAX_KEY_LENGTH} characters once normalized "
            f"(Unicode NFKC), so they cannot get a key: {listed}. Nothing was changed. Rename "
            "them to shorter names in the database (or remove them with the previous Charter "
            "version's `charter users remove`), then start Charter again."
        )
    by_key: dict[str, list[tuple[str, str]]] = {}
    for user_id, username in rows:
        by_key.setdefault(username_key(username), []).append((username, user_id))
    clashes = [sorted(group) for group in by_key.values() if len(group) > 1]
    if clashes:
        listed = "; ".join(
            " and ".join(f"{name!r} (id {user_id})" for name, user_id in group) for group in clashes
        )
        name, user_id = clashes[0][1]
        quoted = name.replace("'", "''")
        example = f"UPDATE users SET username = '{quoted}-2' WHERE id = '{user_id}';"  # noqa: S608
        raise UsernameCollisionError(
            "Charter now treats user names that differ only in case or width as the same name, "
            f"and these users would share one: {listed}. Nothing was changed. Rename or remove "
            "all but one of each group in the database, for example "
            f"{example} "
            "(the previous Charter version's `charter users remove` also works), then start "
            "Charter again."
        )
    return {user_id: username_key(username) for user_id, username in rows}


def upgrade() -> None:
    """Add the columns, fill ``username_key`` for existing users, then make it unique."""
    keys = _existing_keys()
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("username_key", sa.String(length=MAX_KEY_LENGTH), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column("password_change_pending_hash", sa.String(length=128), nullable=True)
        )
        batch_op.add_column(sa.Column("password_change_expires_at", sa.BigInteger(), nullable=True))
    users = sa.table("users", sa.column("id", sa.String), sa.column("username_key", sa.String))
    for user_id, key in keys.items():
        op.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "username_key", existing_type=sa.String(length=MAX_KEY_LENGTH), nullable=False
        )
        batch_op.drop_constraint(batch_op.f("uq_users_username"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_users_username_key"), ["username_key"])


def downgrade() -> None:
    """Back to case-sensitive names (keys dropped; names as typed stay unique)."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_username_key"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_users_username"), ["username"])
        batch_op.drop_column("password_change_expires_at")
        batch_op.drop_column("password_change_pending_hash")
        batch_op.drop_column("must_change_password")
        batch_op.drop_column("username_key")
