"""The Stripe sync's per-row backoff: a customer or invoice Stripe refused is tried again after
a delay growing from a minute to an hour, so rows Stripe refuses for good never fill a round.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "stripe_sync_backoffs",
        # "customer" (object_id: a customer id) or "invoice" (an invoice id to close in Stripe).
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("object_id", sa.Uuid, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("stripe_sync_backoffs", schema=SCHEMA)
