"""The subscription and its proration lines as the API shows them."""

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.subscriptions.models import PendingInvoiceItem, Subscription
from tollgate_billing.subscriptions.schemas import (
    ProrationLine,
    ScheduledChange,
    SubscriptionChangeResult,
    SubscriptionPublic,
)


async def public(session: AsyncSession, subscription: Subscription) -> SubscriptionPublic:
    plan = await PlanRepository(session).get(subscription.plan_key)
    assert plan is not None  # a foreign key
    return to_public(subscription, plan)


def to_public(subscription: Subscription, plan: Plan) -> SubscriptionPublic:
    scheduled = None
    if subscription.scheduled_plan_key and subscription.scheduled_interval:
        scheduled = ScheduledChange(
            plan=subscription.scheduled_plan_key,
            interval=subscription.scheduled_interval,
            at=subscription.current_period_end,
        )
    return SubscriptionPublic.model_validate(
        {
            "id": subscription.id,
            "customer_id": subscription.customer_id,
            "organization_id": subscription.org_id,
            "plan": plan.key,
            "rate_limit_tier": plan.rate_limit_tier,
            "interval": subscription.interval,
            "status": subscription.status,
            "current_period_start": subscription.current_period_start,
            "current_period_end": subscription.current_period_end,
            "trial_end": subscription.trial_end,
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "canceled_at": subscription.canceled_at,
            "scheduled_change": scheduled,
            "version": subscription.version,
            "created_at": subscription.created_at,
            "updated_at": subscription.updated_at,
        }
    )


async def change_result(
    session: AsyncSession, subscription: Subscription, items: list[PendingInvoiceItem]
) -> SubscriptionChangeResult:
    shown = await public(session, subscription)
    lines = [
        ProrationLine.model_validate(
            {
                "kind": item.kind,
                "plan": item.plan_key,
                "interval": item.interval,
                "currency": item.currency,
                "amount": item.amount,
                "covered_from": item.covered_from,
                "covered_to": item.covered_to,
                "description": item.description,
            }
        )
        for item in items
    ]
    return SubscriptionChangeResult(**shown.model_dump(), proration=lines)
