"""Request analytics rollup: the gateway's api_requests per organisation, UTC hour, key, route,
status and plan, with a log-scale latency histogram (ADR 0017); backfilled from the raw events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Buckets of tollgate_metering.analytics.histogram, written out: a migration never changes.
_POSITION = (
    "CASE WHEN {latency} < 0.1 THEN 1 WHEN {latency} >= 600000 THEN 166 "
    "ELSE least(2 + floor(ln({latency} / 0.1) / ln(1.1))::int, 165) END"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE metering.request_analytics_hour (
            org_id uuid NOT NULL,
            bucket_start timestamptz NOT NULL,
            key_id text,
            route text,
            status integer NOT NULL,
            plan text NOT NULL,
            requests bigint NOT NULL,
            request_bytes bigint NOT NULL,
            response_bytes bigint NOT NULL,
            latency_histogram bigint[] NOT NULL
        )
        """
    )
    # key_id is null for signed-in users' requests: one row for them all the same.
    op.execute(
        """
        CREATE UNIQUE INDEX request_analytics_hour_key ON metering.request_analytics_hour
            (org_id, bucket_start, key_id, route, status, plan) NULLS NOT DISTINCT
        """
    )
    # The platform view: every organisation's rows of a period.
    op.execute(
        "CREATE INDEX request_analytics_hour_by_bucket "
        "ON metering.request_analytics_hour (bucket_start)"
    )
    # A dense histogram of (position, count) cells, and the sum of two histograms.
    op.execute(
        """
        CREATE FUNCTION metering.latency_histogram(positions integer[], counts bigint[])
        RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT array_agg(coalesce(cell.count, 0) ORDER BY slot)
            FROM generate_series(1, 166) AS slot
            LEFT JOIN unnest(positions, counts) AS cell(position, count)
                ON cell.position = slot
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION metering.add_histograms(a bigint[], b bigint[])
        RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY slot)
            FROM unnest(a, b) WITH ORDINALITY AS cell(x, y, slot)
        $$
        """
    )
    # The raw events stored so far (kept 35 days), as the ingestion adds them.
    op.execute(backfill_sql())


def backfill_sql(condition: str = "TRUE") -> str:
    """The rollup rows of the stored gateway requests matching a constant SQL condition."""
    position = _POSITION.format(latency="(data->>'latency_ms')::float8")
    return f"""
        INSERT INTO metering.request_analytics_hour
        SELECT org_id, bucket_start, key_id, route, status, plan,
               sum(requests), sum(request_bytes), sum(response_bytes),
               metering.latency_histogram(
                   array_agg(position) FILTER (WHERE position IS NOT NULL),
                   array_agg(requests) FILTER (WHERE position IS NOT NULL)
               )
        FROM (
            SELECT org_id,
                   date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
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


def downgrade() -> None:
    op.execute("DROP TABLE metering.request_analytics_hour")
    op.execute("DROP FUNCTION metering.add_histograms(bigint[], bigint[])")
    op.execute("DROP FUNCTION metering.latency_histogram(integer[], bigint[])")
