"""Meters and usage events; kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from tollgate_shared.events.tables import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "metering"
AGGREGATIONS = "('SUM', 'COUNT', 'MAX', 'MIN', 'UNIQUE_COUNT', 'LATEST')"


def upgrade() -> None:
    create_kit_tables(SCHEMA)
    # The retention sweep forgets the usage consumer's old inbox rows; BRIN because they are
    # written in processed_at order, so the index stays tiny.
    op.create_index(
        "inbox_processed_at", "inbox", ["processed_at"], schema=SCHEMA, postgresql_using="brin"
    )
    op.create_table(
        "meters",
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("key", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("aggregation", sa.String(16), nullable=False),
        sa.Column("value_property", sa.String(64)),
        sa.Column("group_by", ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"aggregation IN {AGGREGATIONS}", name="meters_aggregation"),
        sa.CheckConstraint(
            "(aggregation = 'COUNT') = (value_property IS NULL)", name="meters_value_property"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "usage_events",
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("id", sa.String(128, collation="C"), primary_key=True),
        sa.Column("type", sa.String(63), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("source", sa.String(16), nullable=False),
        sa.CheckConstraint("source IN ('api', 'gateway')", name="usage_events_source"),
        schema=SCHEMA,
    )
    # Listings newest first, with and without a type; the rollups to come read by type too.
    op.create_index(
        "usage_events_by_time",
        "usage_events",
        ["org_id", sa.text("time DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "usage_events_by_type_and_time",
        "usage_events",
        ["org_id", "type", sa.text("time DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    # Rows arrive in received_at order: BRIN finds the expired ones at almost no cost per insert.
    op.create_index(
        "usage_events_received_at",
        "usage_events",
        ["received_at"],
        schema=SCHEMA,
        postgresql_using="brin",
    )


def downgrade() -> None:
    op.drop_table("usage_events", schema=SCHEMA)
    op.drop_table("meters", schema=SCHEMA)
    op.drop_index("inbox_processed_at", table_name="inbox", schema=SCHEMA)
    drop_kit_tables(SCHEMA)
