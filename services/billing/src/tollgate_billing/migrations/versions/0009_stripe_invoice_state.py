"""What billing last made Stripe do with a pushed invoice: void or uncollectible, so the sync
loop finds the pushed invoices whose state here differs from what Stripe was told.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    # NULL: as pushed (open); otherwise the state of ours Stripe was made to follow.
    op.add_column("stripe_invoices", sa.Column("sent_state", sa.String(16)), schema=SCHEMA)
    op.add_column(
        "stripe_invoices", sa.Column("sent_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("stripe_invoices", "sent_at", schema=SCHEMA)
    op.drop_column("stripe_invoices", "sent_state", schema=SCHEMA)
