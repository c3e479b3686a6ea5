"""Onboarding sessions: one per organisation, what it chose until its subscription starts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "onboarding_sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("org_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), nullable=False),
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(f"{SCHEMA}.plans.key")),
        sa.Column("interval", sa.String(5)),
        sa.Column("discount_code", sa.String(64)),
        sa.Column("plan_chosen_at", sa.DateTime(timezone=True)),
        sa.Column("subscription_started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("interval IN ('month', 'year')", name="onboarding_interval"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("onboarding_sessions", schema=SCHEMA)
