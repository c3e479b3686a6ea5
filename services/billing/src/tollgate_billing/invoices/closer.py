"""Period close: the background loop (and CLI / admin trigger) that finalizes the invoices of
periods which ended more than the usage grace window ago.

Each invoice is closed in a transaction of its own, its draft locked with SKIP LOCKED: replicas
share the drafts, a second run finds nothing left to do, and a crash mid-close rolls the whole
invoice back (lines, items marked, number taken)."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.metering_usage import MeteringUsageClient
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.service import finalize

logger = structlog.get_logger(__name__)

CLOSED = Counter(
    "tollgate_billing_periods_closed_total", "Period invoices finalized, by outcome", ["outcome"]
)


async def close_periods(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    metering: MeteringUsageClient,
    grace: timedelta,
    now: datetime | None = None,
    limit: int = 500,
) -> list[uuid.UUID]:
    """Finalize every draft whose period ended at least `grace` before now (at most limit);
    returns the invoices finalized. A draft that fails (metering down) stays a draft for the
    next round."""
    now = now or utcnow()
    closed: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []
    while len(closed) < limit:
        draft_id = None
        try:
            async with sessionmaker() as session, session.begin():
                draft = await InvoiceRepository(session).next_ended_draft(now - grace, skip=failed)
                if draft is None:
                    break
                draft_id = draft.id
                await finalize(session, invoice=draft, metering=metering, now=now)
            closed.append(draft_id)
            CLOSED.labels("done").inc()
        except Exception:
            if draft_id is None:
                raise  # the database itself: the caller's loop retries later
            logger.exception("period not closed", invoice_id=str(draft_id))
            CLOSED.labels("failed").inc()
            failed.append(draft_id)
    return closed


async def close_periods_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    metering: Callable[[], MeteringUsageClient],
    grace: timedelta,
    interval_seconds: float,
) -> None:
    while True:
        try:
            await close_periods(sessionmaker, metering=metering(), grace=grace)
        except Exception:
            logger.exception("period close round failed")
        await asyncio.sleep(interval_seconds)
