"""Request analytics rollups: the gateway's api_requests per organisation, UTC hour (and UTC
day), key, route, status and plan, with a log-scale latency histogram (ADR 0017); backfilled
from the raw events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNITS = ("hour", "day")

# Buckets of tollgate_metering.analytics.histogram, written out: a migration never changes.
_POSITION = (
    "CASE WHEN {latency} < 0.1 THEN 1 WHEN {latency} >= 600000 THEN 166 "
    "ELSE least(2 + floor(ln({latency} / 0.1) / ln(1.1))::int, 165) END"
)


def upgrade() -> None:
    for unit in UNITS:
        # The histogram is sparse: the positions (1..166) with requests, ascending, and their
        # counts (a dense 166-slot array made the rollup larger than the raw events).
        op.execute(
            f"""
            CREATE TABLE metering.request_analytics_{unit} (
                org_id uuid NOT NULL,
                bucket_start timestamptz NOT NULL,
                key_id text,
                route text,
                status integer NOT NULL,
                plan text NOT NULL,
                requests bigint NOT NULL,
                request_bytes bigint NOT NULL,
                response_bytes bigint NOT NULL,
                latency_buckets smallint[] NOT NULL,
                latency_counts bigint[] NOT NULL
            )
            """
        )
        # key_id is null for signed-in users' requests: one row for them all the same.
        op.execute(
            f"""
            CREATE UNIQUE INDEX request_analytics_{unit}_key ON metering.request_analytics_{unit}
                (org_id, bucket_start, key_id, route, status, plan) NULLS NOT DISTINCT
            """
        )
        # The platform view: every organisation's rows of a period.
        op.execute(
            f"CREATE INDEX request_analytics_{unit}_by_bucket "
            f"ON metering.request_analytics_{unit} (bucket_start)"
        )
        # The raw events stored so far (kept 35 days), as the ingestion adds them.
        op.execute(backfill_sql(unit))
    # Per day, the requests of each status by one dimension only ('all': grp null, 'key',
    # 'route', 'plan'): what a month's summary or breakdown without filters reads, a few rows
    # per day and group instead of one per key, route, status and plan combination.
    op.execute(
        """
        CREATE TABLE metering.request_analytics_day_by (
            org_id uuid NOT NULL,
            bucket_start timestamptz NOT NULL,
            dimension text NOT NULL,
            grp text,
            status integer NOT NULL,
            requests bigint NOT NULL,
            request_bytes bigint NOT NULL,
            response_bytes bigint NOT NULL,
            latency_buckets smallint[] NOT NULL,
            latency_counts bigint[] NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE UNIQUE INDEX request_analytics_day_by_dimension_key
            ON metering.request_analytics_day_by (org_id, dimension, bucket_start, grp, status)
            NULLS NOT DISTINCT
        """
    )
    op.execute(
        "CREATE INDEX request_analytics_day_by_dimension_bucket "
        "ON metering.request_analytics_day_by (dimension, bucket_start)"
    )
    op.execute(backfill_by_dimension_sql())


def backfill_sql(unit: str, condition: str = "TRUE") -> str:
    """The rollup rows of the stored gateway requests matching a constant SQL condition."""
    position = _POSITION.format(latency="(data->>'latency_ms')::float8")
    return f"""
        INSERT INTO metering.request_analytics_{unit}
        SELECT org_id, bucket_start, key_id, route, status, plan,
               sum(requests), sum(request_bytes), sum(response_bytes),
               coalesce(array_agg(position::smallint ORDER BY position)
                   FILTER (WHERE position IS NOT NULL), '{{}}'),
               coalesce(array_agg(requests ORDER BY position)
                   FILTER (WHERE position IS NOT NULL), '{{}}')
        FROM (
            SELECT org_id,
                   date_trunc('{unit}', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       AS bucket_start,
                   data->>'key_id' AS key_id, data->>'route' AS route,
                   (data->>'status')::int AS status,
                   coalesce(data->>'plan', 'unknown') AS plan,
                   {position} AS position,
                   count(*) AS requests,
                   coalesce(sum((data->>'request_bytes')::bigint), 0) AS request_bytes,
                   coalesce(sum((data->>'response_bytes')::bigint), 0) AS response_bytes
            FROM metering.usage_events
            WHERE type = 'api_requests' AND source = 'gateway' AND ({condition})
            GROUP BY 1, 2, 3, 4, 5, 6, 7
        ) AS cells
        GROUP BY 1, 2, 3, 4, 5, 6
        """  # noqa: S608 (constant text only)


def backfill_by_dimension_sql(condition: str = "TRUE") -> str:
    """The rows of request_analytics_day_by of the stored gateway requests matching a constant
    SQL condition."""
    position = _POSITION.format(latency="(data->>'latency_ms')::float8")
    return f"""
        INSERT INTO metering.request_analytics_day_by
        SELECT org_id, bucket_start, dimension, grp, status,
               sum(requests), sum(request_bytes), sum(response_bytes),
               coalesce(array_agg(position::smallint ORDER BY position)
                   FILTER (WHERE position IS NOT NULL), '{{}}'),
               coalesce(array_agg(requests ORDER BY position)
                   FILTER (WHERE position IS NOT NULL), '{{}}')
        FROM (
            SELECT org_id,
                   date_trunc('day', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       AS bucket_start,
                   by_dimension.dimension, by_dimension.grp,
                   (data->>'status')::int AS status,
                   {position} AS position,
                   count(*) AS requests,
                   coalesce(sum((data->>'request_bytes')::bigint), 0) AS request_bytes,
                   coalesce(sum((data->>'response_bytes')::bigint), 0) AS response_bytes
            FROM metering.usage_events
            CROSS JOIN LATERAL (VALUES
                ('all', NULL::text), ('key', data->>'key_id'), ('route', data->>'route'),
                ('plan', coalesce(data->>'plan', 'unknown'))
            ) AS by_dimension(dimension, grp)
            WHERE type = 'api_requests' AND source = 'gateway' AND ({condition})
            GROUP BY 1, 2, 3, 4, 5, 6
        ) AS cells
        GROUP BY 1, 2, 3, 4, 5
        """  # noqa: S608 (constant text only)


def downgrade() -> None:
    op.execute("DROP TABLE metering.request_analytics_day_by")
    for unit in reversed(UNITS):
        op.execute(f"DROP TABLE metering.request_analytics_{unit}")
