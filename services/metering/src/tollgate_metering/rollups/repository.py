"""Rollups: per-minute, per-hour and per-day aggregates of stored events, kept in the
transaction that stores them.

Tables: `usage_rollups` (migration 0002) holds, per (org, meter, minute bucket in UTC, subject,
group_key), the event count, sum, min, max and the latest value; `usage_rollups_hour` and
`usage_rollups_day` (migration 0004) hold the same per UTC hour and day, so long queries read
few rows (ADR 0014). `usage_distinct_values[_hour|_day]` hold the distinct values of UNIQUE_COUNT
meters per the same keys, counted at query time (distinct counts cannot be added up). group_key
is a jsonb object of the meter's group_by properties as they were when the event was stored, a
missing property being null (ADR 0012).

The ingestion stages the events it stored, joined with their meters, in the temporary table
`measured_usage_events` (one row per event and meter: MEASURE_STORED below); the statements here
add those rows to every table, coarser ones included, so all of them move in one transaction.
The gateway's api_requests among them are staged in `measured_requests` too (MEASURE_REQUESTS)
and added to the request analytics rollups `request_analytics_hour` and `_day` (migration 0005,
ADR 0017).
"""

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.analytics.histogram import POSITION_SQL
from tollgate_metering.meters.built_in import API_REQUESTS, BUILT_IN_METERS

# Per transaction scratch space of the connection: temporary tables, emptied at every commit
# (and here, in case an earlier insert of the same transaction left rows). Created when missing,
# every time, so a connection handed over by a pooler in transaction mode works too.
STAGING_TABLES = """
SET LOCAL client_min_messages = warning;
CREATE TEMPORARY TABLE IF NOT EXISTS incoming_usage_events (
    org_id uuid NOT NULL,
    id text COLLATE "C" NOT NULL,
    type text NOT NULL,
    subject text NOT NULL,
    time timestamptz NOT NULL,
    data jsonb NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS measured_usage_events (
    org_id uuid NOT NULL,
    meter_key text NOT NULL,
    bucket_start timestamptz NOT NULL,
    subject text NOT NULL,
    group_key jsonb NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    time timestamptz NOT NULL,
    value numeric,
    distinct_value jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS measured_requests (
    org_id uuid NOT NULL,
    bucket_start timestamptz NOT NULL,
    key_id text,
    route text,
    status integer NOT NULL,
    plan text NOT NULL,
    position integer,
    request_bytes bigint NOT NULL,
    response_bytes bigint NOT NULL
) ON COMMIT DELETE ROWS;
DELETE FROM incoming_usage_events;
DELETE FROM measured_usage_events;
DELETE FROM measured_requests;
"""

# Follows a CTE `stored` (the rows an insert into usage_events just stored: org_id, id, type,
# subject, time, data) and joins them with their meters, the organisation's and the built-in
# ones. The value is read from the jsonb as numeric: exact, never a float. Ends with the CTE
# `measured`, one row per staged (event, meter), has_distinct telling UNIQUE_COUNT ones.
MEASURE_STORED = """
meters AS (
    SELECT org_id, key::text, aggregation::text, value_property::text,
           to_jsonb(group_by) AS group_by
    FROM metering.meters
    WHERE org_id IN (SELECT DISTINCT org_id FROM stored)
      AND key IN (SELECT DISTINCT type FROM stored)
    UNION ALL
    SELECT org.org_id, built_in.*
    FROM (SELECT DISTINCT org_id FROM stored) AS org
    CROSS JOIN unnest(
        CAST(:built_in_keys AS text[]), CAST(:built_in_aggregations AS text[]),
        CAST(:built_in_value_properties AS text[]), CAST(:built_in_group_bys AS jsonb[])
    ) AS built_in
),
measured AS (
    INSERT INTO measured_usage_events
    SELECT
        stored.org_id,
        meters.key,
        date_trunc('minute', stored.time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
        stored.subject,
        (
            SELECT coalesce(
                jsonb_object_agg(property, coalesce(stored.data -> property, 'null'::jsonb)),
                '{}'::jsonb
            )
            FROM jsonb_array_elements_text(meters.group_by) AS property
        ),
        stored.id,
        stored.time,
        CASE WHEN meters.aggregation IN ('SUM', 'MIN', 'MAX', 'LATEST')
            THEN (stored.data ->> meters.value_property)::numeric END,
        CASE WHEN meters.aggregation = 'UNIQUE_COUNT'
            THEN stored.data -> meters.value_property END
    FROM stored
    JOIN meters ON meters.org_id = stored.org_id AND meters.key = stored.type
    RETURNING distinct_value IS NOT NULL AS has_distinct
)
"""

# Follows MEASURE_STORED: stages the gateway's api_requests among the stored rows for the request
# analytics rollup (ADR 0017), one row per request with its latency's histogram position. Ends
# with the CTE `measured_requests_staged` (one row per staged request).
MEASURE_REQUESTS = f"""
measured_requests_staged AS (
    INSERT INTO measured_requests
    SELECT
        org_id,
        date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
        data->>'key_id',
        data->>'route',
        (data->>'status')::int,
        coalesce(data->>'plan', 'unknown'),
        {POSITION_SQL.format(latency="(data->>'latency_ms')::float8")},
        coalesce((data->>'request_bytes')::bigint, 0),
        coalesce((data->>'response_bytes')::bigint, 0)
    FROM stored
    WHERE type = '{API_REQUESTS}' AND CAST(:source AS text) = 'gateway'
    RETURNING 1
)
"""  # noqa: S608 (constant fragments only)


# How a staged row adds to a stored analytics row: counts and bytes summed, the two sparse
# histograms merged position by position.
_MERGE_WITH_STORED = """
    requests = rollup.requests + excluded.requests,
    request_bytes = rollup.request_bytes + excluded.request_bytes,
    response_bytes = rollup.response_bytes + excluded.response_bytes,
    latency_buckets = (
        SELECT coalesce(array_agg(DISTINCT position ORDER BY position), '{}')
        FROM unnest(rollup.latency_buckets || excluded.latency_buckets) AS cell(position)
    ),
    latency_counts = (
        SELECT coalesce(array_agg(requests ORDER BY position), '{}')
        FROM (
            SELECT position, sum(requests)::bigint AS requests
            FROM unnest(
                rollup.latency_buckets || excluded.latency_buckets,
                rollup.latency_counts || excluded.latency_counts
            ) AS cell(position, requests)
            GROUP BY position
        ) AS merged
    )
"""


def _add_to_request_analytics(unit: str) -> sa.TextClause:
    """The staged requests, added to the hour or day rollup in key order (no deadlock between
    two transactions): per key the counts, bytes and the sparse histogram, merged position by
    position with the stored one."""
    return sa.text(
        f"""
INSERT INTO metering.request_analytics_{unit} AS rollup (
    org_id, bucket_start, key_id, route, status, plan,
    requests, request_bytes, response_bytes, latency_buckets, latency_counts
)
SELECT org_id, bucket_start, key_id, route, status, plan,
       sum(requests), sum(request_bytes), sum(response_bytes),
       coalesce(array_agg(position::smallint ORDER BY position)
           FILTER (WHERE position IS NOT NULL), '{{}}'),
       coalesce(array_agg(requests ORDER BY position)
           FILTER (WHERE position IS NOT NULL), '{{}}')
FROM (
    SELECT org_id, date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
               AS bucket_start,
           key_id, route, status, plan, position,
           count(*) AS requests, sum(request_bytes) AS request_bytes,
           sum(response_bytes) AS response_bytes
    FROM measured_requests
    GROUP BY 1, 2, 3, 4, 5, 6, 7
) AS cells
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (org_id, bucket_start, key_id, route, status, plan) DO UPDATE SET
{_MERGE_WITH_STORED}"""  # noqa: S608 (constant fragments only)
    )


# The day rows per single dimension (migration 0005): each staged request once per dimension.
_INSERT_BY_DIMENSION = """
INSERT INTO metering.request_analytics_day_by AS rollup (
    org_id, bucket_start, dimension, grp, status,
    requests, request_bytes, response_bytes, latency_buckets, latency_counts
)
SELECT org_id, bucket_start, dimension, grp, status,
       sum(requests), sum(request_bytes), sum(response_bytes),
       coalesce(array_agg(position::smallint ORDER BY position)
           FILTER (WHERE position IS NOT NULL), '{}'),
       coalesce(array_agg(requests ORDER BY position)
           FILTER (WHERE position IS NOT NULL), '{}')
FROM (
    SELECT org_id, date_trunc('day', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
               AS bucket_start,
           by_dimension.dimension, by_dimension.grp, status, position,
           count(*) AS requests, sum(request_bytes) AS request_bytes,
           sum(response_bytes) AS response_bytes
    FROM measured_requests
    CROSS JOIN LATERAL (VALUES
        ('all', NULL::text), ('key', key_id), ('route', route), ('plan', plan)
    ) AS by_dimension(dimension, grp)
    GROUP BY 1, 2, 3, 4, 5, 6
) AS cells
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 3, 2, 4, 5
ON CONFLICT (org_id, dimension, bucket_start, grp, status) DO UPDATE SET
"""
_ADD_TO_REQUEST_ANALYTICS_BY_DIMENSION = sa.text(_INSERT_BY_DIMENSION + _MERGE_WITH_STORED)

_ADD_TO_REQUEST_ANALYTICS = [
    *(_add_to_request_analytics(unit) for unit in ("hour", "day")),
    _ADD_TO_REQUEST_ANALYTICS_BY_DIMENSION,
]

# Built-in meters are defined in code, not stored: the statements get them as parameters.
BUILT_IN_METER_PARAMETERS = {
    "built_in_keys": [meter.key for meter in BUILT_IN_METERS.values()],
    "built_in_aggregations": [meter.aggregation.value for meter in BUILT_IN_METERS.values()],
    "built_in_value_properties": [meter.value_property for meter in BUILT_IN_METERS.values()],
    "built_in_group_bys": [json.dumps(meter.group_by) for meter in BUILT_IN_METERS.values()],
}


@dataclass(frozen=True)
class Resolution:
    """One rollup granularity: its tables' suffix and its bucket of a minute bucket_start."""

    suffix: str
    bucket: str


RESOLUTIONS = (
    Resolution("", "bucket_start"),
    Resolution("_hour", "date_trunc('hour', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
    Resolution("_day", "date_trunc('day', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
)


def _add_to_rollups(resolution: Resolution) -> sa.TextClause:
    # Rows go in primary-key order, so two transactions adding to the same rollups lock them in
    # the same order and cannot deadlock. LATEST keeps the value of the greatest (time, id).
    return sa.text(
        f"""
INSERT INTO metering.usage_rollups{resolution.suffix} AS rollup (
    org_id, meter_key, bucket_start, subject, group_key,
    event_count, value_sum, value_min, value_max, latest_time, latest_event_id, latest_value
)
SELECT
    org_id, meter_key, {resolution.bucket}, subject, group_key,
    count(*), sum(value), min(value), max(value), max(time),
    (array_agg(event_id ORDER BY time DESC, event_id DESC))[1],
    (array_agg(value ORDER BY time DESC, event_id DESC))[1]
FROM measured_usage_events
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (org_id, meter_key, bucket_start, subject, group_key) DO UPDATE SET
    event_count = rollup.event_count + excluded.event_count,
    value_sum = rollup.value_sum + excluded.value_sum,
    value_min = least(rollup.value_min, excluded.value_min),
    value_max = greatest(rollup.value_max, excluded.value_max),
    latest_time = greatest(rollup.latest_time, excluded.latest_time),
    latest_event_id = CASE
        WHEN (excluded.latest_time, excluded.latest_event_id)
            > (rollup.latest_time, rollup.latest_event_id)
        THEN excluded.latest_event_id ELSE rollup.latest_event_id END,
    latest_value = CASE
        WHEN (excluded.latest_time, excluded.latest_event_id)
            > (rollup.latest_time, rollup.latest_event_id)
        THEN excluded.latest_value ELSE rollup.latest_value END
"""  # noqa: S608 (constant fragments only)
    )


def _add_distinct_values(resolution: Resolution) -> sa.TextClause:
    return sa.text(
        f"""
INSERT INTO metering.usage_distinct_values{resolution.suffix} (
    org_id, meter_key, bucket_start, subject, group_key, value
)
SELECT DISTINCT org_id, meter_key, {resolution.bucket}, subject, group_key, distinct_value
FROM measured_usage_events
WHERE distinct_value IS NOT NULL
ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT DO NOTHING
"""  # noqa: S608 (constant fragments only)
    )


_ADD_TO_ROLLUPS = [_add_to_rollups(resolution) for resolution in RESOLUTIONS]
_ADD_DISTINCT_VALUES = [_add_distinct_values(resolution) for resolution in RESOLUTIONS]


class RollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_measured_events(self, *, with_distinct_values: bool) -> None:
        """Add the staged measured events (events just stored, and only those: duplicates must
        add nothing) to every rollup, minute, hour and day. Distinct values go first, rollups
        second, finest first, each in key order: every transaction takes its locks in the same
        order."""
        if with_distinct_values:
            for statement in _ADD_DISTINCT_VALUES:
                await self.session.execute(statement)
        for statement in _ADD_TO_ROLLUPS:
            await self.session.execute(statement)

    async def add_measured_requests(self) -> None:
        """Add the staged gateway requests (stored just now, and only those) to the request
        analytics rollups (hour, day, day by dimension); after the usage rollups, like every
        transaction."""
        for statement in _ADD_TO_REQUEST_ANALYTICS:
            await self.session.execute(statement)
