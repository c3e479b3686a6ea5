"""Usage rollups and distinct values, backfilled from the stored events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "metering"

# The stored events joined with their meters; api_requests is built in (not stored), with the
# group_by it had when this migration was written. Same rules as RollupRepository.
MEASURED = """
WITH meters AS (
    SELECT org_id, key::text, aggregation::text, value_property::text,
           to_jsonb(group_by) AS group_by
    FROM metering.meters
    UNION ALL
    SELECT NULL::uuid, 'api_requests', 'COUNT', NULL, '["route", "method", "status", "key_id"]'
),
measured AS (
    SELECT
        stored.org_id,
        meters.key AS meter_key,
        date_trunc('minute', stored.time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
        stored.subject,
        (
            SELECT coalesce(
                jsonb_object_agg(property, coalesce(stored.data -> property, 'null'::jsonb)),
                '{}'::jsonb
            )
            FROM jsonb_array_elements_text(meters.group_by) AS property
        ) AS group_key,
        stored.id AS event_id,
        stored.time,
        CASE WHEN meters.aggregation IN ('SUM', 'MIN', 'MAX', 'LATEST')
            THEN (stored.data ->> meters.value_property)::numeric END AS value,
        CASE WHEN meters.aggregation = 'UNIQUE_COUNT'
            THEN stored.data -> meters.value_property END AS distinct_value
    FROM metering.usage_events AS stored
    JOIN meters
        ON meters.key = stored.type AND coalesce(meters.org_id, stored.org_id) = stored.org_id
)
"""


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("org_id", sa.Uuid, primary_key=True),
        sa.Column("meter_key", sa.String(63), primary_key=True),
        # The minute (UTC) the events happened in.
        sa.Column("bucket_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("subject", sa.String(256), primary_key=True),
        # The meter's group_by properties and the events' values of them ({} without group_by).
        sa.Column("group_key", JSONB, primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        *_key_columns(),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        # Null for COUNT and UNIQUE_COUNT meters, which have no numeric value.
        sa.Column("value_sum", sa.Numeric),
        sa.Column("value_min", sa.Numeric),
        sa.Column("value_max", sa.Numeric),
        # The greatest (time, id) of the bucket's events, and that event's value.
        sa.Column("latest_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest_event_id", sa.String(128, collation="C"), nullable=False),
        sa.Column("latest_value", sa.Numeric),
        schema=SCHEMA,
    )
    op.create_table(
        "usage_distinct_values",
        *_key_columns(),
        sa.Column("value", JSONB, primary_key=True),
        schema=SCHEMA,
    )
    op.execute(
        MEASURED  # noqa: S608 (constant text only)
        + """
        INSERT INTO metering.usage_rollups
        SELECT org_id, meter_key, bucket_start, subject, group_key,
               count(*), sum(value), min(value), max(value), max(time),
               (array_agg(event_id ORDER BY time DESC, event_id DESC))[1],
               (array_agg(value ORDER BY time DESC, event_id DESC))[1]
        FROM measured
        GROUP BY org_id, meter_key, bucket_start, subject, group_key
        """
    )
    op.execute(
        MEASURED  # noqa: S608 (constant text only)
        + """
        INSERT INTO metering.usage_distinct_values
        SELECT DISTINCT org_id, meter_key, bucket_start, subject, group_key, distinct_value
        FROM measured
        WHERE distinct_value IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_table("usage_distinct_values", schema=SCHEMA)
    op.drop_table("usage_rollups", schema=SCHEMA)
