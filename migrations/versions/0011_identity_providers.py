"""upstream OpenID Providers, accounts linked to them, and sign-ins waiting for their callback

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 12:00:00.000000

Adds ``identity_providers`` (``charter idps``), ``user_links`` (a user linked by the provider's
issuer and ``sub``, unique together), ``upstream_logins`` (state, nonce hash, PKCE verifier and
the pending authorization request of a sign-in sent upstream) and ``users.display_name``.
Nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the three tables and add the column."""
    op.create_table(
        "identity_providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("client_id", sa.String(length=2048), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("client_secret_env", sa.String(length=256), nullable=True),
        sa.Column("client_key_encrypted", sa.Text(), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("jit", sa.Boolean(), nullable=False),
        sa.Column("allowed_email_domains", sa.JSON(), nullable=False),
        sa.Column("required_claims", sa.JSON(), nullable=False),
        sa.Column("scope_claim", sa.String(length=256), nullable=True),
        sa.Column("scope_map", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_providers")),
        sa.UniqueConstraint("issuer", name=op.f("uq_identity_providers_issuer")),
        sa.UniqueConstraint("slug", name=op.f("uq_identity_providers_slug")),
    )
    op.create_table(
        "user_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("scope_limit", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_login_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_links")),
        sa.UniqueConstraint("issuer", "subject", name="uq_user_links_issuer_subject"),
    )
    with op.batch_alter_table("user_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_links_user_id"), ["user_id"], unique=False)
    op.create_table(
        "upstream_logins",
        sa.Column("state_hash", sa.String(length=128), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("pending_hash", sa.String(length=128), nullable=False),
        sa.Column("request_id_encrypted", sa.Text(), nullable=False),
        sa.Column("browser_hash", sa.String(length=128), nullable=False),
        sa.Column("nonce_hash", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_upstream_logins")),
    )
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_upstream_logins_expires_at"), ["expires_at"], unique=False
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=256), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("display_name")
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_logins_expires_at"))
    op.drop_table("upstream_logins")
    with op.batch_alter_table("user_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_links_user_id"))
    op.drop_table("user_links")
    op.drop_table("identity_providers")
