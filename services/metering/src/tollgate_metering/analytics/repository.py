"""Every read of request analytics.

The last hour reads the raw api_requests events the gateway reported (a few thousand rows even
for a busy organisation; exact percentiles). A day and 30 days read the request analytics
rollups (ADR 0017): `request_analytics_day` for the whole UTC days of the period (without
filters `request_analytics_day_by`, the same per single dimension: far fewer rows),
`request_analytics_hour` for its other whole UTC hours, the raw events for its two partial hours
at the edges: counts, bytes and statuses are exact, latency
percentiles are estimated from the merged histograms (analytics/histogram.py: within 4.9 %).
Raw events are kept 35 days (TOLLGATE_METERING_RAW_RETENTION_DAYS), so the edges of 30 days
are always there.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.analytics.histogram import POSITION_SQL, percentiles
from tollgate_metering.analytics.schemas import Dimension, TrafficFilters, TrafficRow
from tollgate_metering.meters.built_in import API_REQUESTS

# What requests are grouped by: a breakdown's dimension, the organisation (platform view), or
# nothing (one group: the summary).
Grouping = Dimension | Literal["organization"] | None

# What a group is: fixed SQL fragments, never input.
_GROUPS: dict[Grouping, str] = {
    None: "NULL::text",
    "organization": "org_id::text",
    Dimension.KEY: "data->>'key_id'",
    Dimension.ROUTE: "data->>'route'",
    Dimension.STATUS: "data->>'status'",
    # Events recorded before the gateway added the plan have none.
    Dimension.PLAN: "coalesce(data->>'plan', 'unknown')",
}

# One statement: the matching calls once, then per group the figures (busiest groups first,
# ties in byte order of the group, with how many groups there are in all) and the count of
# each error status.
_QUERY = """
WITH calls AS (
    SELECT {group} AS grp,
           (data->>'status')::int AS status,
           (data->>'latency_ms')::float8 AS latency_ms,
           (data->>'request_bytes')::bigint AS request_bytes,
           (data->>'response_bytes')::bigint AS response_bytes
    FROM metering.usage_events
    WHERE {conditions}
),
groups AS (
    SELECT grp,
           count(*) AS requests,
           count(*) FILTER (WHERE status >= 200 AND status < 400) AS successes,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[])
               WITHIN GROUP (ORDER BY latency_ms) AS latency,
           coalesce(sum(request_bytes), 0) AS request_bytes,
           coalesce(sum(response_bytes), 0) AS response_bytes,
           count(*) OVER () AS total_groups
    FROM calls
    GROUP BY grp
    ORDER BY requests DESC, grp COLLATE "C" NULLS LAST
    LIMIT :limit
),
errors AS (
    SELECT grp, jsonb_agg(jsonb_build_array(status, requests) ORDER BY status) AS by_status
    FROM (
        SELECT grp, status, count(*) AS requests
        FROM calls
        WHERE status >= 400
        GROUP BY grp, status
    ) AS per_status
    GROUP BY grp
)
SELECT g.grp, g.requests, g.successes, g.latency, g.request_bytes, g.response_bytes,
       g.total_groups, coalesce(e.by_status, '[]'::jsonb) AS errors
FROM groups AS g LEFT JOIN errors AS e ON e.grp IS NOT DISTINCT FROM g.grp
ORDER BY g.requests DESC, g.grp COLLATE "C" NULLS LAST
"""


# The same groups in the rollup's columns.
_ROLLUP_GROUPS: dict[Grouping, str] = {
    None: "NULL::text",
    "organization": "org_id::text",
    Dimension.KEY: "key_id",
    Dimension.ROUTE: "route",
    Dimension.STATUS: "status::text",
    Dimension.PLAN: "plan",
}

# Without filters, whole days are read from request_analytics_day_by: the dimension's rows, and
# the group in them.
_BY_DIMENSION: dict[Grouping, tuple[str, str]] = {
    None: ("all", "NULL::text"),
    "organization": ("all", "org_id::text"),
    Dimension.STATUS: ("all", "status::text"),
    Dimension.KEY: ("key", "grp"),
    Dimension.ROUTE: ("route", "grp"),
    Dimension.PLAN: ("plan", "grp"),
}

_FRACTIONS = (0.5, 0.95, 0.99)

# The whole UTC days from the day rollup, the other whole hours from the hour rollup, the
# partial hours at the edges from the raw events; the
# same figures as _QUERY, the latency as the merged histogram's (position, count) cells of each
# group kept (only those groups' histograms are unnested).
_ROLLUP_QUERY = """
WITH edge_calls AS (
    SELECT {group} AS grp,
           (data->>'status')::int AS status,
           {position} AS position,
           coalesce((data->>'request_bytes')::bigint, 0) AS request_bytes,
           coalesce((data->>'response_bytes')::bigint, 0) AS response_bytes
    FROM metering.usage_events
    WHERE {conditions}
      AND ((time >= :time_from AND time < :hours_from) OR (time >= :hours_to AND time < :time_to))
),
hours AS (
    SELECT {day_group} AS grp, status, requests, request_bytes, response_bytes,
           latency_buckets, latency_counts
    FROM metering.request_analytics_{day_table}
    WHERE {day_conditions} AND bucket_start >= :days_from AND bucket_start < :days_to
    UNION ALL
    SELECT {rollup_group} AS grp, status, requests, request_bytes, response_bytes,
           latency_buckets, latency_counts
    FROM metering.request_analytics_hour
    WHERE {rollup_conditions}
      AND ((bucket_start >= :hours_from AND bucket_start < :days_from)
           OR (bucket_start >= :days_to AND bucket_start < :hours_to))
),
parts AS (
    SELECT grp, status, requests, request_bytes, response_bytes FROM hours
    UNION ALL
    SELECT grp, status, 1, request_bytes, response_bytes FROM edge_calls
),
groups AS (
    SELECT grp,
           sum(requests) AS requests,
           coalesce(sum(requests) FILTER (WHERE status >= 200 AND status < 400), 0) AS successes,
           sum(request_bytes) AS request_bytes,
           sum(response_bytes) AS response_bytes,
           count(*) OVER () AS total_groups
    FROM parts
    GROUP BY grp
    ORDER BY requests DESC, grp COLLATE "C" NULLS LAST
    LIMIT :limit
),
errors AS (
    SELECT grp, jsonb_agg(jsonb_build_array(status, requests) ORDER BY status) AS by_status
    FROM (
        SELECT grp, status, sum(requests) AS requests
        FROM parts
        WHERE status >= 400
        GROUP BY grp, status
    ) AS per_status
    GROUP BY grp
),
cells AS (
    SELECT grp, position, sum(requests) AS requests
    FROM (
        SELECT hours.grp, cell.position::int AS position, cell.requests
        FROM hours
        CROSS JOIN LATERAL unnest(hours.latency_buckets, hours.latency_counts)
            AS cell(position, requests)
        WHERE EXISTS (SELECT FROM groups AS g WHERE g.grp IS NOT DISTINCT FROM hours.grp)
        UNION ALL
        SELECT grp, position, 1 FROM edge_calls WHERE position IS NOT NULL
    ) AS all_cells
    GROUP BY grp, position
),
histograms AS (
    SELECT grp, jsonb_agg(jsonb_build_array(position, requests)) AS cells
    FROM cells
    GROUP BY grp
)
SELECT g.grp, g.requests, g.successes, g.request_bytes, g.response_bytes, g.total_groups,
       coalesce(e.by_status, '[]'::jsonb) AS errors, coalesce(h.cells, '[]'::jsonb) AS cells
FROM groups AS g
LEFT JOIN errors AS e ON e.grp IS NOT DISTINCT FROM g.grp
LEFT JOIN histograms AS h ON h.grp IS NOT DISTINCT FROM g.grp
ORDER BY g.requests DESC, g.grp COLLATE "C" NULLS LAST
"""

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def traffic(
        self,
        *,
        org_id: uuid.UUID | None,
        time_from: datetime,
        time_to: datetime,
        filters: TrafficFilters,
        group_by: Grouping,
        limit: int,
        from_rollup: bool = False,
    ) -> list[TrafficRow]:
        """Figures of the gateway's requests with a time in [time_from, time_to), per group
        (one group when group_by is None); the `limit` busiest groups. from_rollup: read the
        whole hours from the request analytics rollup (estimated percentiles)."""
        if from_rollup:
            return await self.traffic_from_rollup(
                org_id=org_id,
                time_from=time_from,
                time_to=time_to,
                filters=filters,
                group_by=group_by,
                limit=limit,
            )
        return await self.traffic_from_events(
            org_id=org_id,
            time_from=time_from,
            time_to=time_to,
            filters=filters,
            group_by=group_by,
            limit=limit,
        )

    async def traffic_from_rollup(
        self,
        *,
        org_id: uuid.UUID | None,
        time_from: datetime,
        time_to: datetime,
        filters: TrafficFilters,
        group_by: Grouping,
        limit: int,
    ) -> list[TrafficRow]:
        """As traffic_from_events, the whole UTC hours of the period read from the rollup."""
        time_from, time_to = time_from.astimezone(UTC), time_to.astimezone(UTC)
        hours_from = _hour_floor(time_from)
        if hours_from < time_from:
            hours_from += _HOUR
        hours_to = max(_hour_floor(time_to), hours_from)
        # Whole days inside the whole hours, if any (else an empty range at hours_to).
        days_from = _day_floor(hours_from)
        if days_from < hours_from:
            days_from += _DAY
        days_to = _day_floor(hours_to)
        if days_to <= days_from:
            days_from = days_to = hours_to
        conditions = ["type = :type", "source = 'gateway'"]
        rollup_conditions = []
        parameters: dict[str, Any] = {
            "type": API_REQUESTS,
            "time_from": time_from,
            "time_to": time_to,
            "hours_from": hours_from,
            "hours_to": hours_to,
            "days_from": days_from,
            "days_to": days_to,
            "limit": limit,
        }
        if org_id is not None:
            conditions.insert(0, "org_id = :org_id")
            rollup_conditions.append("org_id = :org_id")
            parameters["org_id"] = org_id
        else:
            # Every organisation (the platform view): the raw events have no index on time
            # alone, but any organisation with requests in an edge hour has an hour row there,
            # so the events are looked up per organisation in the (org, type, time) index.
            # (Their ids are fetched first: with a subquery the planner scanned every event.)
            edge_orgs = await self.session.execute(
                sa.text(
                    "SELECT DISTINCT org_id FROM metering.request_analytics_hour"
                    " WHERE bucket_start IN (:edge_hour_from, :hours_to)"
                ),
                {"edge_hour_from": _hour_floor(time_from), "hours_to": hours_to},
            )
            conditions.insert(0, "org_id = ANY(CAST(:edge_orgs AS uuid[]))")
            parameters["edge_orgs"] = list(edge_orgs.scalars())
        if filters.key_id is not None:
            conditions.append("data->>'key_id' = :key_id")
            rollup_conditions.append("key_id = :key_id")
            parameters["key_id"] = str(filters.key_id)
        if filters.route is not None:
            conditions.append("data->>'route' = :route")
            rollup_conditions.append("route = :route")
            parameters["route"] = filters.route
        rollup_where = " AND ".join(rollup_conditions) or "TRUE"
        if filters.key_id is None and filters.route is None:
            day_table = "day_by"
            parameters["dimension"], day_group = _BY_DIMENSION[group_by]
            day_where = " AND ".join([*rollup_conditions, "dimension = :dimension"])
        else:
            day_table, day_group, day_where = "day", _ROLLUP_GROUPS[group_by], rollup_where
        query = _ROLLUP_QUERY.format(
            group=_GROUPS[group_by],
            rollup_group=_ROLLUP_GROUPS[group_by],
            day_table=day_table,
            day_group=day_group,
            day_conditions=day_where,
            position=POSITION_SQL.format(latency="(data->>'latency_ms')::float8"),
            conditions=" AND ".join(conditions),
            rollup_conditions=rollup_where,
        )
        result = await self.session.execute(sa.text(query), parameters)
        rows = []
        for row in result.all():
            p50, p95, p99 = percentiles(
                ((int(position), int(count)) for position, count in row.cells), _FRACTIONS
            )
            rows.append(
                TrafficRow(
                    group=row.grp,
                    requests=int(row.requests),
                    successes=int(row.successes),
                    latency_percentiles=(p50, p95, p99),
                    request_bytes=int(row.request_bytes),
                    response_bytes=int(row.response_bytes),
                    errors_by_status=[(int(status), int(count)) for status, count in row.errors],
                    total_groups=row.total_groups,
                )
            )
        return rows

    async def traffic_from_events(
        self,
        *,
        org_id: uuid.UUID | None,
        time_from: datetime,
        time_to: datetime,
        filters: TrafficFilters,
        group_by: Grouping,
        limit: int,
    ) -> list[TrafficRow]:
        """Figures of the gateway's requests with a time in [time_from, time_to), per group
        (one group when group_by is None); the `limit` busiest groups.

        With an org_id the index (org_id, type, time desc, id desc) finds the rows; without one
        (the platform view) every organisation's events of the period are read.
        """
        # Only gateway events: the API could store api_requests events with any data, which
        # the casts above would fail on (and which are no gateway traffic anyway).
        conditions = [
            "type = :type",
            "source = 'gateway'",
            "time >= :time_from",
            "time < :time_to",
        ]
        parameters: dict[str, Any] = {
            "type": API_REQUESTS,
            "time_from": time_from,
            "time_to": time_to,
            "limit": limit,
        }
        if org_id is not None:
            conditions.insert(0, "org_id = :org_id")
            parameters["org_id"] = org_id
        if filters.key_id is not None:
            conditions.append("data->>'key_id' = :key_id")
            parameters["key_id"] = str(filters.key_id)
        if filters.route is not None:
            conditions.append("data->>'route' = :route")
            parameters["route"] = filters.route
        query = _QUERY.format(group=_GROUPS[group_by], conditions=" AND ".join(conditions))
        result = await self.session.execute(sa.text(query), parameters)
        return [
            TrafficRow(
                group=row.grp,
                requests=row.requests,
                successes=row.successes,
                latency_percentiles=tuple(row.latency),
                request_bytes=int(row.request_bytes),
                response_bytes=int(row.response_bytes),
                errors_by_status=[(int(status), int(count)) for status, count in row.errors],
                total_groups=row.total_groups,
            )
            for row in result.all()
        ]
