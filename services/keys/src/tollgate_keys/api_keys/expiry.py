"""Background task: announce keys (and rotated-out secrets) whose expiry has passed."""

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.api_keys.service import announce_expiries

logger = structlog.get_logger(__name__)


async def announce_expiries_forever(
    sessionmaker: async_sessionmaker[AsyncSession], *, interval_seconds: float
) -> None:
    while True:
        try:
            async with sessionmaker() as session, session.begin():
                announced = await announce_expiries(session)
            if announced:
                logger.info("key expiries announced", count=announced)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("announcing key expiries failed")
        await asyncio.sleep(interval_seconds)
