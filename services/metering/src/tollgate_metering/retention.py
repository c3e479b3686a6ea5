"""Background task: forget raw events, and the usage consumer's record of them, past retention.

By received time, not event time: an id must stay known for as long as a retry of it may
arrive, and retention is never shorter than the late-event window (MeteringSettings). JetStream
keeps a usage event 30 days at most, so the consumer's inbox row is useless by then too.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.db_types import utcnow
from tollgate_metering.gateway_usage.inbox import forget_deliveries_before
from tollgate_metering.ingestion.repository import UsageEventRepository

logger = structlog.get_logger(__name__)
BATCH_SIZE = 5000


async def forget_expired(
    sessionmaker: async_sessionmaker[AsyncSession], *, retention: timedelta, consumer: str
) -> int:
    """Delete what was received before now - retention; returns how many events went."""
    cutoff = utcnow() - retention
    deleted = await _in_batches(
        sessionmaker,
        lambda session: UsageEventRepository(session).delete_received_before(
            cutoff=cutoff, limit=BATCH_SIZE
        ),
    )
    await _in_batches(
        sessionmaker,
        lambda session: forget_deliveries_before(
            session, consumer=consumer, cutoff=cutoff, limit=BATCH_SIZE
        ),
    )
    return deleted


async def _in_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    delete_batch: Callable[[AsyncSession], Awaitable[int]],
) -> int:
    """One short transaction per batch, so ingestion never waits long behind a sweep."""
    deleted = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = await delete_batch(session)
        deleted += batch
        if batch < BATCH_SIZE:
            return deleted


async def forget_expired_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    retention: timedelta,
    consumer: str,
    interval_seconds: float,
) -> None:
    while True:
        try:
            deleted = await forget_expired(sessionmaker, retention=retention, consumer=consumer)
            if deleted:
                logger.info("raw events past retention deleted", count=deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("deleting raw events past retention failed")
        await asyncio.sleep(interval_seconds)
