"""MCP HTTP+SSE transport (protocol 2024-11-05): open legacy streams

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00.000000

Adds ``rs_mcp_legacy_streams``: one row per open ``GET /sse`` stream, naming the MCP session it
serves and the principal (subject, client, token audience) and server it is bound to
(SECURITY-CASES S85). Rows end with their stream, or are purged after ``expires_at``. Nothing
existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table and its indexes."""
    op.create_table(
        "rs_mcp_legacy_streams",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=512), nullable=False),
        sa.Column("audience", sa.String(length=2048), nullable=False),
        sa.Column("resource", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("touched_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rs_mcp_legacy_streams")),
    )
    with op.batch_alter_table("rs_mcp_legacy_streams", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rs_mcp_legacy_streams_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_rs_mcp_legacy_streams_principal", ["subject", "client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_rs_mcp_legacy_streams_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    """Drop the table."""
    with op.batch_alter_table("rs_mcp_legacy_streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rs_mcp_legacy_streams_session_id"))
        batch_op.drop_index("ix_rs_mcp_legacy_streams_principal")
        batch_op.drop_index(batch_op.f("ix_rs_mcp_legacy_streams_expires_at"))
    op.drop_table("rs_mcp_legacy_streams")
