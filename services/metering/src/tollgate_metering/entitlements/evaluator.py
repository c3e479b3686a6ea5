"""The background loop that keeps entitlement states current.

Every interval it takes the marks of changed usage (and changed terms), evaluates each
(org, meter) once, and commits states, threshold crossings and events with the marks' deletion.
A pair that fails is marked again for the next round, never lost; replicas share the marks.
"""

import asyncio
import uuid

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.db_types import utcnow
from tollgate_metering.entitlements.catalog import PlanCatalog
from tollgate_metering.entitlements.changes import mark_changed, take_changes
from tollgate_metering.entitlements.evaluation import evaluate

logger = structlog.get_logger(__name__)

EVALUATIONS = Counter(
    "tollgate_metering_entitlement_evaluations_total",
    "Entitlements evaluated, by outcome",
    ["outcome"],
)
MARKS_PER_ROUND = 1000


async def evaluate_changes(
    sessionmaker: async_sessionmaker[AsyncSession], *, catalog: PlanCatalog
) -> int:
    """One round: returns how many (org, meter) pairs it evaluated."""
    failed: list[tuple[uuid.UUID, str]] = []
    async with sessionmaker() as session, session.begin():
        pairs = await take_changes(session, limit=MARKS_PER_ROUND)
        now = utcnow()
        for org_id, meter_key in pairs:
            try:
                async with session.begin_nested():
                    await evaluate(
                        session, org_id=org_id, meter_key=meter_key, catalog=catalog, now=now
                    )
                EVALUATIONS.labels("done").inc()
            except Exception:
                logger.exception("entitlement not evaluated", org_id=str(org_id), meter=meter_key)
                EVALUATIONS.labels("failed").inc()
                failed.append((org_id, meter_key))
        for org_id, meter_key in failed:
            await mark_changed(session, org_id=org_id, meter_keys=[meter_key])
    return len(pairs)


async def evaluate_changes_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    catalog: PlanCatalog,
    interval_seconds: float,
) -> None:
    while True:
        try:
            while await evaluate_changes(sessionmaker, catalog=catalog) >= MARKS_PER_ROUND:
                pass  # a backlog: go on at once
        except Exception:
            # The database gone: the marks are still there when it returns.
            logger.exception("entitlement round failed")
        await asyncio.sleep(interval_seconds)
