"""Every read of request analytics: from the raw api_requests events the gateway reported.

Raw events are kept 35 days (TOLLGATE_METERING_RAW_RETENTION_DAYS), so the longest period, 30
days, is always complete. Percentiles cannot be added up from the per-minute rollups, which is
why these queries read the events themselves.
"""

import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

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
