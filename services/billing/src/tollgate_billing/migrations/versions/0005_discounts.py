"""Discount codes and their redemptions: at most one running per customer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "discount_codes",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("percent", sa.Numeric),  # exact percent, 0 < p <= 100
        sa.Column("amount_off", sa.BigInteger),  # minor units of currency
        sa.Column("currency", sa.String(3)),
        sa.Column("duration", sa.String(9), nullable=False),
        sa.Column("periods", sa.Integer),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("max_redemptions", sa.Integer),
        sa.Column("redemptions", sa.Integer, nullable=False),
        sa.Column("plans", JSONB),  # null: any plan
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "(percent IS NULL) <> (amount_off IS NULL)", name="discount_codes_one_kind"
        ),
        sa.CheckConstraint(
            "(amount_off IS NULL) = (currency IS NULL)", name="discount_codes_currency"
        ),
        sa.CheckConstraint(
            "duration IN ('once', 'repeating', 'forever')"
            " AND (duration = 'repeating') = (periods IS NOT NULL)",
            name="discount_codes_duration",
        ),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR redemptions <= max_redemptions",
            name="discount_codes_max_redemptions",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "discount_codes_code",
        "discount_codes",
        [sa.text("lower(code)")],
        unique=True,
        schema=SCHEMA,
    )
    op.create_table(
        "discount_redemptions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "discount_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.discount_codes.id"), nullable=False
        ),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), nullable=False),
        sa.Column("org_id", sa.Uuid, nullable=False),
        sa.Column("periods_left", sa.Integer),  # null: forever
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "discount_redemptions_one_running",
        "discount_redemptions",
        ["customer_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_constraint("invoice_lines_kind", "invoice_lines", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "invoice_lines_kind",
        "invoice_lines",
        "kind IN ('base_fee', 'proration', 'metered', 'discount', 'tax')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.invoice_lines WHERE kind = 'discount'")  # noqa: S608
    op.drop_constraint("invoice_lines_kind", "invoice_lines", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "invoice_lines_kind",
        "invoice_lines",
        "kind IN ('base_fee', 'proration', 'metered', 'tax')",
        schema=SCHEMA,
    )
    op.drop_table("discount_redemptions", schema=SCHEMA)
    op.drop_table("discount_codes", schema=SCHEMA)
