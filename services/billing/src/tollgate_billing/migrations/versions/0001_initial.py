"""Plans, customers; kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tollgate_shared.events.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "billing"
AMOUNT = sa.Numeric(16, 4)


def upgrade() -> None:
    create_kit_tables(SCHEMA)
    op.create_table(
        "plans",
        sa.Column("key", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("monthly_price", AMOUNT, nullable=False),
        sa.Column("yearly_price", AMOUNT),
        sa.Column("trial_days", sa.Integer, nullable=False),
        sa.Column("rate_limit_tier", sa.String(32), nullable=False),
        sa.Column("metered_charges", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        # Last line of defence: the API validates the same before any write.
        sa.CheckConstraint("monthly_price >= 0 AND yearly_price >= 0", name="plans_prices"),
        sa.CheckConstraint("trial_days BETWEEN 0 AND 365", name="plans_trial_days"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="plans_currency"),
        schema=SCHEMA,
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("org_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(f"{SCHEMA}.plans.key"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    # Counting a plan's customers (may its prices change?) reads this index only.
    op.create_index("customers_plan_key", "customers", ["plan_key"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("customers", schema=SCHEMA)
    op.drop_table("plans", schema=SCHEMA)
    drop_kit_tables(SCHEMA)
