"""Transactional outbox: an event is written in the same transaction as the change it reports."""

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.tables import outbox

NOTIFY_CHANNEL = "tollgate_outbox"


async def enqueue(session: AsyncSession, event: CloudEvent) -> None:
    """Store the event for the relay; it is published only if the transaction commits."""
    await session.execute(
        sa.insert(outbox).values(
            id=uuid.UUID(event.id),
            subject=event.type,
            payload=event.model_dump(mode="json", exclude_none=True),
        )
    )
    # Delivered by PostgreSQL at commit, never for a rolled-back transaction.
    await session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
