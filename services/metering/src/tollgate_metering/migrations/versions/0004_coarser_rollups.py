"""Hour and day rollups (and distinct values) beside the minute ones, backfilled from them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "metering"
UNITS = ("hour", "day")


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("meter_key", sa.String(63), primary_key=True),
        # The hour or day (UTC) the events happened in.
        sa.Column("bucket_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("subject", sa.String(256), primary_key=True),
        # As in the minute rollups: the meter's group_by values when the events were stored.
        sa.Column("group_key", JSONB, primary_key=True),
    ]


def upgrade() -> None:
    for unit in UNITS:
        op.create_table(
            f"usage_rollups_{unit}",
            *_key_columns(),
            sa.Column("event_count", sa.BigInteger, nullable=False),
            sa.Column("value_sum", sa.Numeric),
            sa.Column("value_min", sa.Numeric),
            sa.Column("value_max", sa.Numeric),
            sa.Column("latest_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("latest_event_id", sa.String(128, collation="C"), nullable=False),
            sa.Column("latest_value", sa.Numeric),
            schema=SCHEMA,
        )
        op.create_table(
            f"usage_distinct_values_{unit}",
            *_key_columns(),
            sa.Column("value", JSONB, primary_key=True),
            schema=SCHEMA,
        )
        # One customer's usage over a month: without it, a query by subject would walk every
        # subject's rows of the range in the key (org, meter, bucket, ...). Updates of existing
        # rows change no indexed column, so they stay HOT and do not touch it.
        for table in (f"usage_rollups_{unit}", f"usage_distinct_values_{unit}"):
            op.create_index(
                f"{table}_by_subject",
                table,
                ["org_id", "meter_key", "subject", "bucket_start"],
                schema=SCHEMA,
            )
        # The same sums the ingestion adds, over the minute rows stored so far.
        op.execute(
            f"""
            INSERT INTO metering.usage_rollups_{unit}
            SELECT org_id, meter_key,
                   date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   subject, group_key,
                   sum(event_count), sum(value_sum), min(value_min), max(value_max),
                   max(latest_time),
                   (array_agg(latest_event_id ORDER BY latest_time DESC, latest_event_id DESC))[1],
                   (array_agg(latest_value ORDER BY latest_time DESC, latest_event_id DESC))[1]
            FROM metering.usage_rollups
            GROUP BY 1, 2, 3, 4, 5
            """  # noqa: S608 (constant text only)
        )
        op.execute(
            f"""
            INSERT INTO metering.usage_distinct_values_{unit}
            SELECT DISTINCT org_id, meter_key,
                   date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   subject, group_key, value
            FROM metering.usage_distinct_values
            """  # noqa: S608 (constant text only)
        )


def downgrade() -> None:
    for unit in reversed(UNITS):
        op.drop_table(f"usage_distinct_values_{unit}", schema=SCHEMA)
        op.drop_table(f"usage_rollups_{unit}", schema=SCHEMA)
