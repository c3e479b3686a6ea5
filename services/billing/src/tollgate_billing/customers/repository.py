"""Every query on customers."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from tollgate_billing.customers.models import Customer


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_unless_org_has_one(self, customer: Customer) -> Customer | None:
        """Insert the customer; None when the organisation already has one. One statement, so
        two deliveries of an org's creation (even under different event ids) make one."""
        result = await self.session.scalars(
            insert(Customer)
            .values(customer.model_dump())
            .on_conflict_do_nothing(index_elements=["org_id"])
            .returning(Customer)
        )
        return result.first()

    async def of_org(self, org_id: uuid.UUID, *, for_update: bool = False) -> Customer | None:
        query = select(Customer).where(Customer.org_id == org_id)
        if for_update:
            query = query.with_for_update()
        result = await self.session.execute(query)
        return result.scalars().first()

    async def get(self, customer_id: uuid.UUID) -> Customer | None:
        return await self.session.get(Customer, customer_id)
