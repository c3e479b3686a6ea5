"""Organisations, users, memberships, invitations, refresh tokens, API keys; kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from tollgate_shared.events.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "keys"


def _timestamps(*names: str, nullable: bool = True) -> list[sa.Column]:
    return [sa.Column(name, sa.DateTime(timezone=True), nullable=nullable) for name in names]


def upgrade() -> None:
    create_kit_tables(SCHEMA)
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(50), nullable=False),
        *_timestamps("created_at", nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("full_name", sa.String(200)),
        sa.Column("password_hash", sa.String, nullable=False),
        sa.Column("is_super_admin", sa.Boolean, nullable=False),
        *_timestamps("created_at", nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "memberships",
        sa.Column("org_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.organizations.id"), primary_key=True),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.users.id"), primary_key=True),
        sa.Column("role", sa.String(30), nullable=False),
        *_timestamps("created_at", nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"], schema=SCHEMA)
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("org_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.organizations.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("token_hash", sa.String, nullable=False, unique=True),
        sa.Column("invited_by", sa.Uuid),
        *_timestamps("created_at", "expires_at", nullable=False),
        *_timestamps("accepted_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_invitations_org_id", "invitations", ["org_id"], schema=SCHEMA)
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.users.id"), nullable=False),
        sa.Column("org_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.organizations.id")),
        sa.Column("token_hash", sa.String, nullable=False, unique=True),
        *_timestamps("created_at", "expires_at", nullable=False),
        *_timestamps("revoked_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"], schema=SCHEMA)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("org_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("rate_limit", JSONB),
        sa.Column("display_prefix", sa.String(16), nullable=False),
        sa.Column("last_four", sa.String(4), nullable=False),
        sa.Column("created_by", sa.String(80)),
        *_timestamps("created_at", "updated_at", nullable=False),
        *_timestamps("expires_at", "revoked_at", "expiry_announced_at", "last_used_at"),
        sa.Column("request_count", sa.BigInteger, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.create_index(
        "api_keys_org_listing", "api_keys", ["org_id", "created_at", "id"], schema=SCHEMA
    )
    op.create_index(
        "api_keys_expiring",
        "api_keys",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("expiry_announced_at IS NULL AND revoked_at IS NULL"),
    )
    op.create_table(
        "api_key_secrets",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("key_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.api_keys.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        *_timestamps("created_at", nullable=False),
        *_timestamps("expires_at", "expiry_announced_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_api_key_secrets_key_id", "api_key_secrets", ["key_id"], schema=SCHEMA)


def downgrade() -> None:
    for table in (
        "api_key_secrets",
        "api_keys",
        "refresh_tokens",
        "invitations",
        "memberships",
        "users",
        "organizations",
    ):
        op.drop_table(table, schema=SCHEMA)
    drop_kit_tables(SCHEMA)
