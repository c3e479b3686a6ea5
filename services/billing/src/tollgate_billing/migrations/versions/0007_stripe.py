"""Stripe: what billing made in Stripe (customers, products, plans, invoices) by our ids, and
the Stripe events received, each applied once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column(
            "customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), primary_key=True
        ),
        sa.Column("stripe_customer_id", sa.String(255), nullable=False, unique=True),
        _created_at(),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_products",
        sa.Column(
            "plan_key", sa.String(63), sa.ForeignKey(f"{SCHEMA}.plans.key"), primary_key=True
        ),
        sa.Column("stripe_product_id", sa.String(255), nullable=False, unique=True),
        _created_at(),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_plans",
        sa.Column("stripe_plan_id", sa.String(255), primary_key=True),
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(f"{SCHEMA}.plans.key"), nullable=False),
        sa.Column("interval", sa.String(5), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        _created_at(),
        sa.UniqueConstraint("plan_key", "interval", "currency", "amount"),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_invoices",
        sa.Column("invoice_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.invoices.id"), primary_key=True),
        sa.Column("stripe_invoice_id", sa.String(255), nullable=False, unique=True),
        _created_at(),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "stripe_events",
        "stripe_invoices",
        "stripe_plans",
        "stripe_products",
        "stripe_customers",
    ):
        op.drop_table(table, schema=SCHEMA)
