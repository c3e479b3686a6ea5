"""The usage consumer's inbox rows (the kit's table), kept only while a redelivery can come."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.events.tables import inbox


async def forget_deliveries_before(
    session: AsyncSession, *, consumer: str, cutoff: datetime, limit: int
) -> int:
    """Delete up to limit inbox rows of the consumer processed before cutoff; returns how many."""
    oldest: sa.Select[Any] = sa.select(sa.column("ctid")).select_from(inbox)
    oldest = oldest.where(inbox.c.consumer == consumer, inbox.c.processed_at < cutoff)
    result = await session.execute(
        sa.delete(inbox).where(sa.column("ctid").in_(oldest.limit(limit)))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
