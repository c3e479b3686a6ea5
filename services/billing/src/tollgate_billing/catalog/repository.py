"""Every query on plans."""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.catalog.models import Plan
from tollgate_billing.customers.models import Customer


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_unless_key_taken(self, plan: Plan) -> Plan | None:
        """Insert the plan; None when the key is taken (archived plans included). One
        statement, so two concurrent creations (or seeding replicas) cannot both succeed."""
        result = await self.session.scalars(
            insert(Plan).values(plan.model_dump()).on_conflict_do_nothing().returning(Plan)
        )
        return result.first()

    async def get(self, key: str, *, for_update: bool = False) -> Plan | None:
        query = select(Plan).where(Plan.key == key)
        if for_update:  # a price change and a first customer must not cross
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def list(self, *, include_archived: bool) -> Sequence[Plan]:
        query = select(Plan)
        if not include_archived:
            query = query.where(col(Plan.archived_at).is_(None))
        # Cheapest first, as a pricing page shows them; the key breaks ties.
        ordered = query.order_by(col(Plan.monthly_price), col(Plan.key))
        return (await self.session.execute(ordered)).scalars().all()

    async def customer_counts(self, keys: Sequence[str]) -> dict[str, int]:
        result = await self.session.execute(
            sa.select(col(Customer.plan_key), sa.func.count())
            .where(col(Customer.plan_key).in_(list(keys)))
            .group_by(col(Customer.plan_key))
        )
        counts = {key: 0 for key in keys}
        counts.update({key: count for key, count in result.all()})
        return counts

    async def save(self, plan: Plan) -> None:
        self.session.add(plan)
        await self.session.flush()
