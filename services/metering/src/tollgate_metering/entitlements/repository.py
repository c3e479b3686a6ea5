"""Every query on overrides, states and threshold crossings."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_metering.entitlements.models import EntitlementOverride, EntitlementState

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")

_RECORD_CROSSING = sa.text(
    """
    INSERT INTO metering.threshold_crossings
        (org_id, meter_key, period_start, usage_limit, percent, used, crossed_at)
    VALUES (:org_id, :meter_key, :period_start, :usage_limit, :percent, :used, now())
    ON CONFLICT DO NOTHING
    RETURNING percent
    """
)


class EntitlementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, *, org_id: uuid.UUID, meter_key: str) -> None:
        """Until the transaction ends: one evaluator per entitlement at a time, so each reads
        the state its predecessor committed."""
        await self.session.execute(_LOCK, {"name": f"entitlement:{org_id}:{meter_key}"})

    async def overrides(self, *, org_id: uuid.UUID) -> Sequence[EntitlementOverride]:
        result = await self.session.execute(
            select(EntitlementOverride).where(EntitlementOverride.org_id == org_id)
        )
        return result.scalars().all()

    async def override(self, *, org_id: uuid.UUID, meter_key: str) -> EntitlementOverride | None:
        return await self.session.get(EntitlementOverride, (org_id, meter_key))

    async def save_override(self, override: EntitlementOverride) -> None:
        self.session.add(override)
        await self.session.flush()

    async def delete_override(self, override: EntitlementOverride) -> None:
        await self.session.delete(override)
        await self.session.flush()

    async def state(self, *, org_id: uuid.UUID, meter_key: str) -> EntitlementState | None:
        # populate_existing: read what is committed now, not what this session saw earlier.
        return await self.session.get(EntitlementState, (org_id, meter_key), populate_existing=True)

    async def save_state(self, state: EntitlementState) -> None:
        self.session.add(state)
        await self.session.flush()

    async def flagged_states(self, *, now: datetime) -> Sequence[EntitlementState]:
        """States of the current period at or past their limit: what the gateway enforces."""
        result = await self.session.execute(
            select(EntitlementState)
            .where(col(EntitlementState.status).in_(("grace", "exceeded")))
            .where(col(EntitlementState.period_end) > now)
            .order_by(col(EntitlementState.org_id), col(EntitlementState.meter_key))
        )
        return result.scalars().all()

    async def record_crossing(
        self,
        *,
        org_id: uuid.UUID,
        meter_key: str,
        period_start: datetime,
        usage_limit: Decimal,
        percent: int,
        used: Decimal,
    ) -> bool:
        """True the first time this threshold of this period and limit is recorded."""
        result = await self.session.execute(
            _RECORD_CROSSING,
            {
                "org_id": org_id,
                "meter_key": meter_key,
                "period_start": period_start,
                "usage_limit": usage_limit,
                "percent": percent,
                "used": used,
            },
        )
        return result.first() is not None
