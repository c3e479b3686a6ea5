"""Subscriptions, pending invoice items (the seam to invoices).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "billing"
PLAN_KEY = f"{SCHEMA}.plans.key"


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "customer_id",
            sa.Uuid,
            sa.ForeignKey(f"{SCHEMA}.customers.id"),
            nullable=False,
            unique=True,  # one current subscription per customer
        ),
        sa.Column("org_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(PLAN_KEY), nullable=False),
        sa.Column("interval", sa.String(5), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_number", sa.Integer, nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_end", sa.DateTime(timezone=True)),
        sa.Column("trial_used", sa.Boolean, nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True)),
        sa.Column("scheduled_plan_key", sa.String(63), sa.ForeignKey(PLAN_KEY)),
        sa.Column("scheduled_interval", sa.String(5)),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("interval IN ('month', 'year')", name="subscriptions_interval"),
        sa.CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'canceled')", name="subscriptions_status"
        ),
        sa.CheckConstraint(
            "current_period_end > current_period_start", name="subscriptions_period"
        ),
        sa.CheckConstraint(
            "(scheduled_plan_key IS NULL) = (scheduled_interval IS NULL)",
            name="subscriptions_scheduled_change",
        ),
        schema=SCHEMA,
    )
    # The roller looks for ended periods and trials.
    op.create_index(
        "subscriptions_period_end", "subscriptions", ["current_period_end"], schema=SCHEMA
    )
    op.create_index("subscriptions_plan_key", "subscriptions", ["plan_key"], schema=SCHEMA)
    # Customers made before subscriptions existed get one: their plan, monthly, active, from
    # now (to the second, UTC; PostgreSQL adds a month clamped to the month's end, like us).
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.subscriptions (
            id, customer_id, org_id, plan_key, interval, status, anchor_at, period_number,
            current_period_start, current_period_end, trial_used, cancel_at_period_end,
            version, created_at, updated_at)
        SELECT gen_random_uuid(), c.id, c.org_id, c.plan_key, 'month', 'active', t.start, 0,
            t.start, (t.start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC',
            p.monthly_price > 0, false, 1, t.start, t.start
        FROM {SCHEMA}.customers AS c
        JOIN {SCHEMA}.plans AS p ON p.key = c.plan_key
        CROSS JOIN (SELECT date_trunc('second', now()) AS start) AS t
        """  # noqa: S608 - a constant schema name, no input
    )
    op.create_table(
        "pending_invoice_items",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), nullable=False),
        sa.Column(
            "subscription_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.subscriptions.id"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(PLAN_KEY), nullable=False),
        sa.Column("interval", sa.String(5), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),  # minor units, credits negative
        sa.Column("covered_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("covered_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("subscription_version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # Set by the invoice that bills the item; null while pending.
        sa.Column("invoiced_at", sa.DateTime(timezone=True)),
        sa.Column("invoice_id", sa.Uuid),
        sa.CheckConstraint(
            "kind IN ('proration_credit', 'proration_charge')", name="pending_items_kind"
        ),
        sa.CheckConstraint(
            "(kind = 'proration_credit' AND amount < 0)"
            " OR (kind = 'proration_charge' AND amount > 0)",
            name="pending_items_sign",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "pending_invoice_items_uninvoiced",
        "pending_invoice_items",
        ["customer_id", "created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("invoiced_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("pending_invoice_items", schema=SCHEMA)
    op.drop_table("subscriptions", schema=SCHEMA)
