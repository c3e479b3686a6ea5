"""Every query on stored usage events."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_metering.entitlements.changes import mark_measured
from tollgate_metering.ingestion.cursor import EventCursor
from tollgate_metering.ingestion.models import UsageEvent
from tollgate_metering.ingestion.schemas import EventFilters, NewEvent, Source
from tollgate_metering.rollups.repository import (
    BUILT_IN_METER_PARAMETERS,
    MEASURE_REQUESTS,
    MEASURE_STORED,
    STAGING_TABLES,
    RollupRepository,
)

_COPY_INCOMING = "COPY incoming_usage_events (org_id, id, type, subject, time, data) FROM STDIN"


# The staged events go in with one statement that also stages what the rollups need: only the
# rows ON CONFLICT DO NOTHING actually inserted reach `stored`, hence the rollups.
_STORE = """
WITH stored AS (
    INSERT INTO metering.usage_events AS event
        (org_id, id, type, subject, time, data, received_at, source)
    SELECT org_id, id, type, subject, time, data, now(), :source
    FROM incoming_usage_events
    -- Key order: overlapping batches lock their rows in the same order.
    ORDER BY org_id, id
    ON CONFLICT DO NOTHING
    RETURNING event.org_id, event.id, event.type, event.subject, event.time, event.data
),
"""
_COUNT = """
SELECT (SELECT count(*) FROM stored), (SELECT count(*) FROM measured WHERE has_distinct),
       (SELECT count(*) FROM measured_requests_staged)
"""
_STORE_STAGED = sa.text(_STORE + MEASURE_STORED + ",\n" + MEASURE_REQUESTS + _COUNT)


class UsageEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(
        self, *, org_id: uuid.UUID, source: Source, events: Sequence[NewEvent]
    ) -> int:
        """Store the events whose id the organisation has not used yet, and add exactly those
        to the rollups; returns how many."""
        return await self.insert_new_of_organizations(source=source, events={org_id: events})

    async def insert_new_of_organizations(
        self, *, source: Source, events: Mapping[uuid.UUID, Sequence[NewEvent]]
    ) -> int:
        """Store the events whose id their organisation has not used yet, and add exactly those
        to the rollups; returns how many.

        The events are copied (COPY, the cheapest way in) into a temporary table of the
        transaction, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING stores them. ON
        CONFLICT makes the id check and the write one atomic step: a concurrent request with the
        same id waits for this transaction and then skips the row, and if this transaction rolls
        back nothing remembers the ids. The rows it returns, and only they, go into the rollups
        in the same transaction, so a duplicate adds nothing there either, and their meters are
        marked for the entitlement evaluator.
        """
        if not any(events.values()):
            return 0
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(STAGING_TABLES)
        async with driver.cursor() as cursor, cursor.copy(_COPY_INCOMING) as copy:
            for org_id, org_events in events.items():
                for event in org_events:
                    await copy.write_row(
                        (org_id, event.id, event.type, event.subject, event.time, event.data_json)
                    )
        stored, distinct, requests = (
            await self.session.execute(
                _STORE_STAGED, {"source": source, **BUILT_IN_METER_PARAMETERS}
            )
        ).one()
        if stored:
            await RollupRepository(self.session).add_measured_events(
                with_distinct_values=distinct > 0
            )
            if requests:
                await RollupRepository(self.session).add_measured_requests()
            # The entitlements of these meters are evaluated again once this commits.
            await mark_measured(self.session)
        return int(stored)

    async def list_page(
        self,
        *,
        org_id: uuid.UUID,
        filters: EventFilters,
        after: EventCursor | None,
        limit: int,
    ) -> Sequence[UsageEvent]:
        """Newest first; one row more than asked, so the caller knows whether a page follows."""
        query = select(UsageEvent).where(UsageEvent.org_id == org_id)
        if filters.type is not None:
            query = query.where(UsageEvent.type == filters.type)
        if filters.subject is not None:
            query = query.where(UsageEvent.subject == filters.subject)
        if filters.time_from is not None:
            query = query.where(col(UsageEvent.time) >= filters.time_from)
        if filters.time_to is not None:
            query = query.where(col(UsageEvent.time) < filters.time_to)
        if after is not None:
            query = query.where(
                sa.tuple_(col(UsageEvent.time), col(UsageEvent.id))
                < sa.tuple_(sa.literal(after.time), sa.literal(after.id))
            )
        query = query.order_by(col(UsageEvent.time).desc(), col(UsageEvent.id).desc())
        result = await self.session.execute(query.limit(limit + 1))
        return result.scalars().all()

    async def delete_received_before(self, *, cutoff: datetime, limit: int) -> int:
        """Delete up to limit events received before cutoff; returns how many."""
        table = UsageEvent.__table__  # type: ignore[attr-defined]
        oldest: sa.Select[Any] = sa.select(sa.column("ctid")).select_from(table)
        oldest = oldest.where(table.c.received_at < cutoff)
        result = await self.session.execute(
            sa.delete(table).where(sa.column("ctid").in_(oldest.limit(limit)))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
