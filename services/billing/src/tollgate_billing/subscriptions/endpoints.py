from typing import Annotated

from fastapi import APIRouter, Depends, Request

from tollgate_billing.auth import BillingAdmin, OrgReader
from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.subscriptions import service
from tollgate_billing.subscriptions.models import PendingInvoiceItem, Subscription
from tollgate_billing.subscriptions.schemas import (
    ProrationLine,
    ScheduledChange,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionChangeResult,
    SubscriptionPublic,
)
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/subscription", tags=["subscription"])


def _default_plan(request: Request) -> str:
    settings: BillingSettings = request.app.state.settings
    return settings.default_plan


DefaultPlan = Annotated[str, Depends(_default_plan)]


async def _subscription_to_change(identity: BillingAdmin, session: SessionDep) -> Subscription:
    """The caller's organisation's subscription, locked until the request commits: two changes
    at once run one after the other, the second seeing the first's result."""
    assert identity.org_id is not None
    return await service.current_subscription(session, org_id=identity.org_id, for_update=True)


SubscriptionToChange = Annotated[Subscription, Depends(_subscription_to_change)]


@router.get("", response_model=SubscriptionPublic)
async def get_subscription(
    identity: OrgReader, session: SessionDep, default_plan: DefaultPlan
) -> SubscriptionPublic:
    """The organisation's subscription, as of now (an ended period is shown rolled forward)."""
    assert identity.org_id is not None
    subscription = await service.current_subscription(session, org_id=identity.org_id)
    if subscription.current_period_end <= utcnow():
        # A period ended since the roller's last round: bring it forward under the lock.
        subscription = await service.current_subscription(
            session, org_id=identity.org_id, for_update=True
        )
        await service.roll_forward(
            session, subscription=subscription, now=utcnow(), default_plan=default_plan
        )
    return await _public(session, subscription)


@router.post("/change", response_model=SubscriptionChangeResult)
async def change_subscription(
    body: SubscriptionChange,
    subscription: SubscriptionToChange,
    session: SessionDep,
    default_plan: DefaultPlan,
) -> SubscriptionChangeResult:
    """Another plan or interval, `now` (prorated to the second) or at `period_end`."""
    items = await service.change_plan(
        session,
        subscription=subscription,
        plan_key=body.plan,
        interval=body.interval,
        at=body.at,
        now=utcnow(),
        default_plan=default_plan,
    )
    return await _result(session, subscription, items)


@router.post("/cancel", response_model=SubscriptionChangeResult)
async def cancel_subscription(
    body: SubscriptionCancel,
    subscription: SubscriptionToChange,
    session: SessionDep,
    default_plan: DefaultPlan,
) -> SubscriptionChangeResult:
    """Back to the default plan, `now` (unused time credited) or at `period_end`."""
    items = await service.cancel(
        session, subscription=subscription, at=body.at, now=utcnow(), default_plan=default_plan
    )
    return await _result(session, subscription, items)


@router.post("/resume", response_model=SubscriptionPublic)
async def resume_subscription(
    subscription: SubscriptionToChange, session: SessionDep, default_plan: DefaultPlan
) -> SubscriptionPublic:
    """Undo a cancel at period end."""
    await service.resume(
        session, subscription=subscription, now=utcnow(), default_plan=default_plan
    )
    return await _public(session, subscription)


async def _public(session: SessionDep, subscription: Subscription) -> SubscriptionPublic:
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


async def _result(
    session: SessionDep, subscription: Subscription, items: list[PendingInvoiceItem]
) -> SubscriptionChangeResult:
    public = await _public(session, subscription)
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
    return SubscriptionChangeResult(**public.model_dump(), proration=lines)
