"""MCP 2026-07-28: tasks (io.modelcontextprotocol/tasks) and change notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:20:48.407527

Adds ``rs_mcp_tasks`` (tool calls running as tasks, bound to their principal, purged after
their TTL) and ``rs_mcp_broadcasts`` (list-changed, resource-updated and task-status
notifications for ``subscriptions/listen`` streams on every worker). Both are new tables of the
resource server; nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two tables and their ``created_at``/``expires_at`` indexes."""
    op.create_table(
        "rs_mcp_broadcasts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=2048), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("client_id", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rs_mcp_broadcasts")),
    )
    with op.batch_alter_table("rs_mcp_broadcasts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rs_mcp_broadcasts_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "rs_mcp_tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=512), nullable=False),
        sa.Column("tool", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("input_requests", sa.JSON(), nullable=False),
        sa.Column("input_responses", sa.JSON(), nullable=False),
        sa.Column("used_keys", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rs_mcp_tasks")),
    )
    with op.batch_alter_table("rs_mcp_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rs_mcp_tasks_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    """Drop the two tables."""
    with op.batch_alter_table("rs_mcp_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rs_mcp_tasks_expires_at"))

    op.drop_table("rs_mcp_tasks")
    with op.batch_alter_table("rs_mcp_broadcasts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rs_mcp_broadcasts_created_at"))

    op.drop_table("rs_mcp_broadcasts")
