"""pending authorizations remember prompt=consent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 06:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``pending_authorizations.fresh_consent_required`` (false for waiting requests)."""
    with op.batch_alter_table("pending_authorizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fresh_consent_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    """Drop ``pending_authorizations.fresh_consent_required``."""
    with op.batch_alter_table("pending_authorizations", schema=None) as batch_op:
        batch_op.drop_column("fresh_consent_required")
