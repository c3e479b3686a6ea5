"""Every subscription period has an invoice from its first second: a draft that remembers the
plan the period started on, ended when the next period starts, finalized by close_periods."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.catalog.models import Plan
from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.subscriptions.models import Subscription


async def track_period(
    session: AsyncSession,
    *,
    subscription: Subscription,
    plan: Plan,
    base_fee_due: bool,
    restarted: bool = False,
) -> None:
    """Open the draft of the subscription's current period (once) and end the one before it
    where this one starts (an immediate change ends a period early).

    base_fee_due is False when a proration charge already bills the period's fee (an
    immediate interval switch started it) or the period is a trial. restarted: a change just
    restarted the period, possibly within the second the previous one started (that one then
    lasted no time, and its draft becomes this period's)."""
    start = subscription.current_period_start
    existing = (
        await session.execute(
            select(Invoice)
            .where(col(Invoice.subscription_id) == subscription.id)
            .where(col(Invoice.period_start) == start)
        )
    ).scalar_one_or_none()
    if existing is not None:
        if restarted and existing.state == InvoiceState.DRAFT and existing.ended_at is None:
            existing.plan_key, existing.interval = plan.key, subscription.interval
            existing.currency, existing.period_end = plan.currency, subscription.current_period_end
            existing.base_fee_due = base_fee_due and subscription.status != "trialing"
            session.add(existing)
            await session.flush()
        return
    await session.execute(
        sa.update(Invoice)
        .where(col(Invoice.subscription_id) == subscription.id)
        .where(col(Invoice.ended_at).is_(None))
        .where(col(Invoice.period_start) < start)
        .values(ended_at=start)
    )
    session.add(
        Invoice(
            org_id=subscription.org_id,
            customer_id=subscription.customer_id,
            subscription_id=subscription.id,
            plan_key=plan.key,
            interval=subscription.interval,
            base_fee_due=base_fee_due and subscription.status != "trialing",
            currency=plan.currency,
            period_start=start,
            period_end=subscription.current_period_end,
            state=InvoiceState.DRAFT.value,
            created_at=start,
        )
    )
    await session.flush()
