"""Every query on stored usage events."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_metering.entitlements.changes import mark_changed
from tollgate_metering.ingestion.cursor import EventCursor
from tollgate_metering.ingestion.models import UsageEvent
from tollgate_metering.ingestion.schemas import EventFilters, NewEvent, Source
from tollgate_metering.rollups.repository import RollupRepository, StoredEvent


def _array(
    name: str, values: Sequence[Any], item_type: sa.types.TypeEngine[Any]
) -> sa.BindParameter[Any]:
    return sa.bindparam(name, values, type_=ARRAY(item_type))


class UsageEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(
        self, *, org_id: uuid.UUID, source: Source, events: Sequence[NewEvent]
    ) -> int:
        """Store the events whose id the organisation has not used yet, and add exactly those
        to the rollups; returns how many.

        One statement for the whole batch (INSERT ... SELECT FROM unnest(arrays)). ON CONFLICT
        DO NOTHING makes the id check and the write one atomic step: a concurrent request with
        the same id waits for this transaction and then skips the row, and if this transaction
        rolls back nothing remembers the ids. Its RETURNING rows, and only they, go into the
        rollups in the same transaction, so a duplicate adds nothing there either, and their
        meters are marked for the entitlement evaluator.
        """
        if not events:
            return 0
        rows = (
            sa.func.unnest(
                _array("ids", [event.id for event in events], sa.Text()),
                _array("types", [event.type for event in events], sa.Text()),
                _array("subjects", [event.subject for event in events], sa.Text()),
                _array("times", [event.time for event in events], sa.DateTime(timezone=True)),
                # Sent as text and cast by PostgreSQL: psycopg has no jsonb[] adapter for strings.
                sa.cast(
                    _array("data", [event.data_json for event in events], sa.Text()), ARRAY(JSONB)
                ),
            )
            .table_valued("id", "type", "subject", "time", "data")
            .render_derived(name="incoming")
        )
        statement = (
            insert(UsageEvent)
            .from_select(
                ["org_id", "id", "type", "subject", "time", "data", "received_at", "source"],
                sa.select(
                    sa.literal(org_id, sa.Uuid()),
                    rows.c.id,
                    rows.c.type,
                    rows.c.subject,
                    rows.c.time,
                    rows.c.data,
                    sa.func.now(),
                    sa.literal(source, sa.Text()),
                )
                # Id order: overlapping batches lock their rows in the same order.
                .order_by(rows.c.id),
            )
            .on_conflict_do_nothing()
            .returning(
                col(UsageEvent.id),
                col(UsageEvent.type),
                col(UsageEvent.subject),
                col(UsageEvent.time),
                sa.cast(col(UsageEvent.data), sa.Text()),
            )
        )
        stored = [StoredEvent(*row) for row in (await self.session.execute(statement)).all()]
        await RollupRepository(self.session).add_stored_events(org_id=org_id, events=stored)
        # The entitlements of these meters are evaluated again once this commits.
        await mark_changed(self.session, org_id=org_id, meter_keys={event.type for event in stored})
        return len(stored)

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
