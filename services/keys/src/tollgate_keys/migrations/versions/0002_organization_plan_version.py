"""The version of the billing subscription an organisation's plan was last taken from.

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

SCHEMA = "keys"


def upgrade() -> None:
    # 0: no subscription event applied yet; any version billing publishes is newer.
    op.add_column(
        "organizations",
        sa.Column("plan_version", sa.BigInteger, nullable=False, server_default="0"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("organizations", "plan_version", schema=SCHEMA)
