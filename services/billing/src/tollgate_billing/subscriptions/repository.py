"""Every query on subscriptions and pending invoice items."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.customers.models import Customer
from tollgate_billing.subscriptions.models import PendingInvoiceItem, Subscription


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_org(self, org_id: uuid.UUID, *, for_update: bool = False) -> Subscription | None:
        query = select(Subscription).where(col(Subscription.org_id) == org_id)
        if for_update:  # two changes at once are applied one after the other
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def due(self, now: datetime, *, limit: int) -> Sequence[Subscription]:
        """Subscriptions whose period (or trial) has ended, locked; rows another replica holds
        are skipped, so replicas share the work without waiting on each other."""
        query = (
            select(Subscription)
            .where(col(Subscription.current_period_end) <= now)
            .order_by(col(Subscription.current_period_end))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).scalars().all()

    async def save(self, subscription: Subscription) -> None:
        self.session.add(subscription)
        await self.session.flush()

    async def follow_plan_on_customer(self, subscription: Subscription) -> None:
        """customers.plan_key mirrors the subscription: the catalog counts a plan's customers
        from it (prices are fixed while a plan has any)."""
        await self.session.execute(
            sa.update(Customer)
            .where(col(Customer.id) == subscription.customer_id)
            .where(col(Customer.plan_key) != subscription.plan_key)
            .values(plan_key=subscription.plan_key, updated_at=subscription.updated_at)
        )

    async def add_items(self, items: Sequence[PendingInvoiceItem]) -> None:
        self.session.add_all(items)
        await self.session.flush()

    async def pending_items(self, customer_id: uuid.UUID) -> Sequence[PendingInvoiceItem]:
        query = (
            select(PendingInvoiceItem)
            .where(col(PendingInvoiceItem.customer_id) == customer_id)
            .where(col(PendingInvoiceItem.invoiced_at).is_(None))
            .order_by(col(PendingInvoiceItem.created_at), col(PendingInvoiceItem.kind))
        )
        return (await self.session.execute(query)).scalars().all()
