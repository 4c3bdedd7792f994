"""audit events carry the request id; audit reads by time, event, user and client

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-02 12:20:00.000000

Adds ``audit_events.request_id`` (the id of the HTTP request that caused the event, also in
the access log; empty for events of the command line and for rows written before) and indexes
on ``audit_events.subject`` and ``audit_events.client_id`` for ``charter audit list --user`` /
``--client`` and the admin console's filters. Nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column and the two indexes."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_events_subject"), ["subject"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_client_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_subject"))
        batch_op.drop_column("request_id")
