"""Rollups: per-minute aggregates of stored events, kept in the transaction that stores them.

Tables (migration 0002): `usage_rollups` holds, per (org, meter, minute bucket in UTC, subject,
group_key), the event count, sum, min, max and the latest value; `usage_distinct_values` holds
the distinct values of UNIQUE_COUNT meters per the same key, counted at query time (distinct
counts cannot be added up). group_key is a jsonb object of the meter's group_by properties as
they were when the event was stored, a missing property being null (ADR 0012).
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.meters.built_in import BUILT_IN_METERS


@dataclass(frozen=True)
class StoredEvent:
    """An event the insert actually stored (its RETURNING row), data as jsonb text."""

    id: str
    type: str
    subject: str
    time: datetime
    data_json: str


# The stored events joined with their meters (the organisation's and the built-in ones), one row
# per (event, meter). The value is read from the jsonb text as numeric: exact, never a float.
_MEASURED = """
WITH stored AS (
    SELECT * FROM unnest(
        CAST(:ids AS text[]), CAST(:types AS text[]), CAST(:subjects AS text[]),
        CAST(:times AS timestamptz[]), CAST(:data AS jsonb[])
    ) AS stored (id, type, subject, time, data)
),
meters AS (
    SELECT key::text, aggregation::text, value_property::text, to_jsonb(group_by) AS group_by
    FROM metering.meters
    WHERE org_id = :org_id AND key = ANY(CAST(:types AS text[]))
    UNION ALL
    SELECT * FROM unnest(
        CAST(:built_in_keys AS text[]), CAST(:built_in_aggregations AS text[]),
        CAST(:built_in_value_properties AS text[]), CAST(:built_in_group_bys AS jsonb[])
    )
),
measured AS (
    SELECT
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
        stored.id COLLATE "C" AS event_id,
        stored.time,
        CASE WHEN meters.aggregation IN ('SUM', 'MIN', 'MAX', 'LATEST')
            THEN (stored.data ->> meters.value_property)::numeric END AS value,
        CASE WHEN meters.aggregation = 'UNIQUE_COUNT'
            THEN stored.data -> meters.value_property END AS distinct_value
    FROM stored JOIN meters ON meters.key = stored.type
)
"""

# Rows go in primary-key order, so two transactions adding to the same rollups lock them in
# the same order and cannot deadlock. LATEST keeps the value of the greatest (time, id).
_ADD_TO_ROLLUPS = sa.text(
    _MEASURED
    + """
INSERT INTO metering.usage_rollups AS rollup (
    org_id, meter_key, bucket_start, subject, group_key,
    event_count, value_sum, value_min, value_max, latest_time, latest_event_id, latest_value
)
SELECT
    :org_id, meter_key, bucket_start, subject, group_key,
    count(*), sum(value), min(value), max(value), max(time),
    (array_agg(event_id ORDER BY time DESC, event_id DESC))[1],
    (array_agg(value ORDER BY time DESC, event_id DESC))[1]
FROM measured
GROUP BY meter_key, bucket_start, subject, group_key
ORDER BY meter_key, bucket_start, subject, group_key
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
"""
)

_ADD_DISTINCT_VALUES = sa.text(
    _MEASURED
    + """
INSERT INTO metering.usage_distinct_values (
    org_id, meter_key, bucket_start, subject, group_key, value
)
SELECT DISTINCT CAST(:org_id AS uuid), meter_key, bucket_start, subject, group_key, distinct_value
FROM measured
WHERE distinct_value IS NOT NULL
ORDER BY meter_key, bucket_start, subject, group_key, distinct_value
ON CONFLICT DO NOTHING
"""
)


# Built-in meters are defined in code, not stored: the statements get them as parameters.
_BUILT_IN_METER_PARAMETERS = {
    "built_in_keys": [meter.key for meter in BUILT_IN_METERS.values()],
    "built_in_aggregations": [meter.aggregation.value for meter in BUILT_IN_METERS.values()],
    "built_in_value_properties": [meter.value_property for meter in BUILT_IN_METERS.values()],
    "built_in_group_bys": [json.dumps(meter.group_by) for meter in BUILT_IN_METERS.values()],
}


class RollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_stored_events(self, *, org_id: uuid.UUID, events: Sequence[StoredEvent]) -> None:
        """Add events just stored (and only those: duplicates must add nothing) to every rollup
        of their meters. Distinct values go first, rollups second, each in key order: every
        transaction takes its locks in the same order."""
        if not events:
            return
        parameters = {
            "org_id": org_id,
            "ids": [event.id for event in events],
            "types": [event.type for event in events],
            "subjects": [event.subject for event in events],
            "times": [event.time for event in events],
            "data": [event.data_json for event in events],
            **_BUILT_IN_METER_PARAMETERS,
        }
        await self.session.execute(_ADD_DISTINCT_VALUES, parameters)
        await self.session.execute(_ADD_TO_ROLLUPS, parameters)
