"""Open invoices, attempts and events for the payments and dunning tests."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.subscriptions.repository import SubscriptionRepository

from .subscription_helpers import new_subscription


async def open_invoice(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org_id: uuid.UUID,
    now: datetime,
    total: int = 1000,
    period_start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
) -> uuid.UUID:
    """An open, numbered invoice of `total` cents for the month from period_start, not yet
    due for collection (the organisation's customer and subscription first created at `now`
    when it has none); returns the invoice id."""
    async with sessions() as session:
        existing = await SubscriptionRepository(session).of_org(org_id)
    if existing is None:
        await new_subscription(sessions, org_id=org_id, now=now)
    async with sessions() as session, session.begin():
        subscription = await SubscriptionRepository(session).of_org(org_id)
        assert subscription is not None
        period_end = period_start + timedelta(days=31)
        invoice = Invoice(
            org_id=org_id,
            customer_id=subscription.customer_id,
            subscription_id=subscription.id,
            plan_key=subscription.plan_key,
            interval="month",
            base_fee_due=True,
            currency="USD",
            period_start=period_start,
            period_end=period_end,
            ended_at=period_end,
            state=InvoiceState.OPEN.value,
            number=await InvoiceRepository(session).take_number(),  # gapless, like finalize
            subtotal=total,
            total=total,
            created_at=now,
            finalized_at=now,
        )
        session.add(invoice)
    return invoice.id


async def attempts(session: AsyncSession, invoice_id: uuid.UUID) -> list[tuple]:
    """(attempt_number, provider, reference, outcome, failure_reason) in order."""
    rows = await session.execute(
        sa.text(
            "SELECT attempt_number, provider, reference, outcome, failure_reason"
            " FROM billing.payment_attempts WHERE invoice_id = :id ORDER BY attempt_number"
        ),
        {"id": invoice_id},
    )
    return [tuple(row) for row in rows]


async def events(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[str, dict]]:
    """The organisation's events in the outbox, in order: (type, data)."""
    rows = await session.execute(
        sa.text(
            "SELECT subject, payload->'data' FROM billing.outbox WHERE payload->>'orgid' = :org"
            " ORDER BY position"
        ),
        {"org": str(org_id)},
    )
    return [(row[0], row[1]) for row in rows]


async def status_of(session: AsyncSession, org_id: uuid.UUID) -> str:
    subscription = await SubscriptionRepository(session).of_org(org_id)
    assert subscription is not None
    await session.refresh(subscription)
    return subscription.status


async def invoice_row(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await session.get(Invoice, invoice_id, populate_existing=True)
    assert invoice is not None
    return invoice
