"""Each organisation's plan tier, as its owner published it."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tollgate_metering.organizations.models import OrganizationPlan


class OrganizationPlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def plan_of(self, org_id: uuid.UUID) -> str | None:
        result = await self.session.execute(
            sa.select(col(OrganizationPlan.plan)).where(col(OrganizationPlan.org_id) == org_id)
        )
        return result.scalar_one_or_none()

    async def record(self, *, org_id: uuid.UUID, plan: str, changed_at: datetime) -> bool:
        """Store the plan unless a newer fact is already stored (events may come out of order);
        returns whether this fact was stored."""
        table = OrganizationPlan.__table__  # type: ignore[attr-defined]
        incoming = insert(table).values(org_id=org_id, plan=plan, changed_at=changed_at)
        statement = incoming.on_conflict_do_update(
            index_elements=[table.c.org_id],
            set_={"plan": incoming.excluded.plan, "changed_at": incoming.excluded.changed_at},
            where=table.c.changed_at <= incoming.excluded.changed_at,
        ).returning(table.c.org_id)
        return (await self.session.execute(statement)).first() is not None
