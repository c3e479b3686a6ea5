"""Invoices: one per subscription period, opened as a draft when the period starts and
finalized (numbered) after it ended; their lines; the per-operator invoice number sequence.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("org_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.customers.id"), nullable=False),
        sa.Column(
            "subscription_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.subscriptions.id"), nullable=False
        ),
        # The plan and interval the period started on: its base fee and its usage prices.
        sa.Column("plan_key", sa.String(63), sa.ForeignKey(f"{SCHEMA}.plans.key"), nullable=False),
        sa.Column("interval", sa.String(5), nullable=False),
        # False when a proration charge already bills the period's fee (a change started it)
        # or the period is a trial.
        sa.Column("base_fee_due", sa.Boolean, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        # When the period really ended (a change may end it early); null while it runs.
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("number", sa.String(32), unique=True),
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("usage_from", sa.DateTime(timezone=True)),
        sa.Column("usage_to", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True)),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.Column("voided_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("subscription_id", "period_start", name="invoices_one_per_period"),
        sa.CheckConstraint(
            "state IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name="invoices_state"
        ),
        sa.CheckConstraint("(state = 'draft') = (number IS NULL)", name="invoices_numbered"),
        schema=SCHEMA,
    )
    op.create_index("invoices_org", "invoices", ["org_id", "period_start", "id"], schema=SCHEMA)
    # The period close job looks for ended drafts.
    op.create_index(
        "invoices_drafts_ended",
        "invoices",
        ["ended_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'draft' AND ended_at IS NOT NULL"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "invoice_id",
            sa.Uuid,
            sa.ForeignKey(f"{SCHEMA}.invoices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("meter", sa.String(63)),
        sa.Column("quantity", sa.Numeric),  # exact, as metering measured it
        sa.Column("included", sa.Numeric),
        sa.Column("billable", sa.Numeric),
        sa.Column("unit_price", sa.Numeric),  # per unit or per package, major units
        sa.Column("price_detail", sa.dialects.postgresql.JSONB),  # the priced charge lines
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("pending_item_id", sa.Uuid),
        sa.UniqueConstraint("invoice_id", "position", name="invoice_lines_position"),
        sa.CheckConstraint(
            "kind IN ('base_fee', 'proration', 'metered')", name="invoice_lines_kind"
        ),
        schema=SCHEMA,
    )
    # One row per operator (this deployment): locked FOR UPDATE to take the next number, so
    # numbers are gapless and never reused (a rolled back close gives its number back).
    op.create_table(
        "invoice_number_sequences",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("last_number", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.execute(
        "INSERT INTO billing.invoice_number_sequences (name, prefix, last_number)"
        " VALUES ('invoices', 'INV-', 0)"
    )
    # Every current period gets its draft: billed at its end like any other.
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.invoices (
            id, org_id, customer_id, subscription_id, plan_key, interval, base_fee_due, currency,
            period_start, period_end, state, subtotal, total, created_at)
        SELECT gen_random_uuid(), s.org_id, s.customer_id, s.id, s.plan_key, s.interval,
            s.status <> 'trialing', p.currency, s.current_period_start, s.current_period_end,
            'draft', 0, 0, now()
        FROM {SCHEMA}.subscriptions AS s
        JOIN {SCHEMA}.plans AS p ON p.key = s.plan_key
        """  # noqa: S608 - a constant schema name, no input
    )


def downgrade() -> None:
    op.drop_table("invoice_number_sequences", schema=SCHEMA)
    op.drop_table("invoice_lines", schema=SCHEMA)
    op.drop_table("invoices", schema=SCHEMA)
