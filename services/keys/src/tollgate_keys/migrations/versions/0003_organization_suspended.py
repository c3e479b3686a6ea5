"""Whether an organisation is suspended for non-payment (its billing subscription's status).

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

SCHEMA = "keys"


def upgrade() -> None:
    # No organisation was suspended before billing could say so.
    op.add_column(
        "organizations",
        sa.Column("suspended", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("organizations", "suspended", schema=SCHEMA)
