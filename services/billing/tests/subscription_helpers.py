"""Subscriptions set up at chosen instants, for tests of the rules in time."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.customers.service import create_customer
from tollgate_billing.subscriptions.models import Subscription
from tollgate_billing.subscriptions.repository import SubscriptionRepository


async def new_subscription(
    db: async_sessionmaker[AsyncSession],
    *,
    org_id: uuid.UUID | None = None,
    plan: str = "free",
    now: datetime,
    trial_used: bool = False,
) -> uuid.UUID:
    """A customer and its subscription, created at `now`; returns the organisation id."""
    org_id = org_id or uuid.uuid4()
    async with db() as session, session.begin():
        await create_customer(session, org_id=org_id, name="Acme", plan_key=plan, now=now)
        if trial_used:
            await session.execute(
                sa.update(Subscription)
                .where(Subscription.org_id == org_id)  # type: ignore[arg-type]
                .values(trial_used=True)
            )
    return org_id


async def load(session: AsyncSession, org_id: uuid.UUID) -> Subscription:
    subscription = await SubscriptionRepository(session).of_org(org_id, for_update=True)
    assert subscription is not None
    return subscription


async def outbox_events(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[str, dict]]:
    rows = await session.execute(
        sa.text(
            "SELECT subject, payload FROM billing.outbox WHERE payload->>'orgid' = :org"
            " AND subject LIKE 'tollgate.billing.subscription.%' ORDER BY position"
        ),
        {"org": str(org_id)},
    )
    return [(row[0], row[1]["data"]) for row in rows]


async def pending_items(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[str, str, int]]:
    rows = await session.execute(
        sa.text(
            "SELECT i.kind, i.plan_key, i.amount FROM billing.pending_invoice_items AS i"
            " JOIN billing.customers AS c ON c.id = i.customer_id WHERE c.org_id = :org"
            " ORDER BY i.created_at, i.kind"
        ),
        {"org": org_id},
    )
    return [(row[0], row[1], row[2]) for row in rows]
