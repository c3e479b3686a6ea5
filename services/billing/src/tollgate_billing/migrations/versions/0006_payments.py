"""Payments: one payment method per customer, payment attempts, invoice collection and dunning
columns, the dunning policy row, and the subscription status suspended.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.Uuid, primary_key=True),
        # One current method per customer: setting another replaces it.
        sa.Column(
            "customer_id",
            sa.Uuid,
            sa.ForeignKey(f"{SCHEMA}.customers.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("org_id", sa.Uuid, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(255)),  # the provider's id; null for the ledger
        sa.Column("brand", sa.String(32), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),  # never the whole card number
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("provider IN ('ledger', 'stripe')", name="payment_methods_provider"),
        sa.CheckConstraint("last4 ~ '^[0-9]{4}$'", name="payment_methods_last4"),
        sa.CheckConstraint("exp_month BETWEEN 1 AND 12", name="payment_methods_exp_month"),
        schema=SCHEMA,
    )
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("invoice_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.invoices.id"), nullable=False),
        sa.Column("org_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(255)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("failure_reason", sa.String(255)),
        sa.Column("attempt_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("provider IN ('ledger', 'stripe')", name="payment_attempts_provider"),
        sa.CheckConstraint(
            "outcome IN ('succeeded', 'failed', 'pending')", name="payment_attempts_outcome"
        ),
        sa.CheckConstraint(
            "(outcome = 'failed') = (failure_reason IS NOT NULL)", name="payment_attempts_reason"
        ),
        schema=SCHEMA,
    )
    # A provider's report of one payment, delivered twice, is one attempt.
    op.create_index(
        "payment_attempts_reference",
        "payment_attempts",
        ["provider", "reference"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("reference IS NOT NULL"),
    )
    op.create_index(
        "payment_attempts_invoice",
        "payment_attempts",
        ["invoice_id", "attempt_number"],
        schema=SCHEMA,
    )
    # The operator's list of failed payments, newest first.
    op.create_index(
        "payment_attempts_outcome",
        "payment_attempts",
        ["outcome", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    # When the collection job next tries the invoice (or applies the dunning action); null:
    # nothing to do. first_failed_at anchors the retry schedule and the grace period.
    op.add_column(
        "invoices", sa.Column("next_payment_attempt_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.add_column(
        "invoices",
        sa.Column("payment_attempt_count", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.add_column(
        "invoices", sa.Column("first_failed_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.create_index(
        "invoices_collection_due",
        "invoices",
        ["next_payment_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'open' AND next_payment_attempt_at IS NOT NULL"),
    )
    op.create_table(
        "dunning_policy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("retry_days", JSONB, nullable=False),
        sa.Column("grace_days", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="dunning_policy_one_row"),
        sa.CheckConstraint("action IN ('downgrade', 'suspend')", name="dunning_policy_action"),
        schema=SCHEMA,
    )
    op.drop_constraint("subscriptions_status", "subscriptions", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "subscriptions_status",
        "subscriptions",
        "status IN ('trialing', 'active', 'past_due', 'suspended', 'canceled')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    # A suspended subscription goes back to past_due: it still owes its invoice.
    op.execute(f"UPDATE {SCHEMA}.subscriptions SET status = 'past_due' WHERE status = 'suspended'")  # noqa: S608
    op.drop_constraint("subscriptions_status", "subscriptions", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "subscriptions_status",
        "subscriptions",
        "status IN ('trialing', 'active', 'past_due', 'canceled')",
        schema=SCHEMA,
    )
    op.drop_table("dunning_policy", schema=SCHEMA)
    op.drop_index("invoices_collection_due", "invoices", schema=SCHEMA)
    op.drop_column("invoices", "first_failed_at", schema=SCHEMA)
    op.drop_column("invoices", "payment_attempt_count", schema=SCHEMA)
    op.drop_column("invoices", "next_payment_attempt_at", schema=SCHEMA)
    op.drop_table("payment_attempts", schema=SCHEMA)
    op.drop_table("payment_methods", schema=SCHEMA)
