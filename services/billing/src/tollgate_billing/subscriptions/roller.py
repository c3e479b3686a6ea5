"""The background loop that moves subscriptions past the end of their periods.

Each round locks due subscriptions with SKIP LOCKED, so replicas share them and an API change
holding a row is never waited on (the change rolls the row forward itself). Rolling is
idempotent: a subscription whose period has not ended is left alone.
"""

import asyncio
from datetime import datetime

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.db_types import utcnow
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.service import roll_forward

logger = structlog.get_logger(__name__)

ROLLED = Counter(
    "tollgate_billing_subscriptions_rolled_total",
    "Subscriptions rolled forward, by outcome",
    ["outcome"],
)
ROWS_PER_ROUND = 200


async def roll_due_subscriptions(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    default_plan: str,
    now: datetime | None = None,
) -> int:
    """One round; returns how many subscriptions it rolled."""
    now = now or utcnow()
    rolled = 0
    async with sessionmaker() as session, session.begin():
        due = await SubscriptionRepository(session).due(now, limit=ROWS_PER_ROUND)
        for subscription in due:
            try:
                async with session.begin_nested():
                    await roll_forward(
                        session, subscription=subscription, now=now, default_plan=default_plan
                    )
                ROLLED.labels("done").inc()
                rolled += 1
            except Exception:
                # Left as it is: the next round tries again; the others are committed.
                logger.exception("subscription not rolled", subscription_id=str(subscription.id))
                ROLLED.labels("failed").inc()
                await session.refresh(subscription)
    return rolled


async def roll_periods_forever(
    sessionmaker: async_sessionmaker[AsyncSession], *, default_plan: str, interval_seconds: float
) -> None:
    while True:
        try:
            while (
                await roll_due_subscriptions(sessionmaker, default_plan=default_plan)
                >= ROWS_PER_ROUND
            ):
                pass  # a backlog: go on at once
        except Exception:
            logger.exception("subscription round failed")  # the database gone: next round
        await asyncio.sleep(interval_seconds)
