"""The Checkout Session whose card is each Stripe customer's method on file, with its card's
creation time: a session completed earlier whose webhook arrives later no longer replaces it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.add_column(
        "stripe_customers", sa.Column("checkout_session_id", sa.String(255)), schema=SCHEMA
    )
    op.add_column(
        "stripe_customers",
        sa.Column("checkout_method_created_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("stripe_customers", "checkout_method_created_at", schema=SCHEMA)
    op.drop_column("stripe_customers", "checkout_session_id", schema=SCHEMA)
