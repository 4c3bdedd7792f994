"""identity providers remember whether the providers file or ``charter idps`` manages them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 13:00:00.000000

Adds ``identity_providers.source`` (``cli`` or ``file``; existing rows are ``cli``), read by
:mod:`authserver.federation.provider_file`. Nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column (``cli`` for every existing provider)."""
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="cli", nullable=False)
        )


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.drop_column("source")
