from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from tollgate_billing.auth import BillingAdmin, OrgReader
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.subscriptions import service, views
from tollgate_billing.subscriptions.models import Subscription
from tollgate_billing.subscriptions.preconditions import check_if_match, set_etag
from tollgate_billing.subscriptions.schemas import (
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


async def _subscription_to_change(
    identity: BillingAdmin,
    session: SessionDep,
    if_match: Annotated[str | None, Header(description='The ETag read, e.g. "3"')] = None,
) -> Subscription:
    """The caller's organisation's subscription, locked until the request commits: two changes
    at once run one after the other, the second seeing the first's result (or, with If-Match,
    refused with 412 when the first changed it)."""
    assert identity.org_id is not None
    subscription = await service.current_subscription(
        session, org_id=identity.org_id, for_update=True
    )
    check_if_match(subscription, if_match)
    return subscription


SubscriptionToChange = Annotated[Subscription, Depends(_subscription_to_change)]


@router.get("", response_model=SubscriptionPublic)
async def get_subscription(
    identity: OrgReader, session: SessionDep, default_plan: DefaultPlan, response: Response
) -> SubscriptionPublic:
    """The organisation's subscription, as of now (an ended period is shown rolled forward)."""
    assert identity.org_id is not None
    subscription = await service.subscription_as_of(
        session, org_id=identity.org_id, now=utcnow(), default_plan=default_plan
    )
    set_etag(response, subscription)
    return await views.public(session, subscription)


@router.post("/change", response_model=SubscriptionChangeResult)
async def change_subscription(
    body: SubscriptionChange,
    subscription: SubscriptionToChange,
    session: SessionDep,
    default_plan: DefaultPlan,
    response: Response,
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
    set_etag(response, subscription)
    return await views.change_result(session, subscription, items)


@router.post("/cancel", response_model=SubscriptionChangeResult)
async def cancel_subscription(
    body: SubscriptionCancel,
    subscription: SubscriptionToChange,
    session: SessionDep,
    default_plan: DefaultPlan,
    response: Response,
) -> SubscriptionChangeResult:
    """Back to the default plan, `now` (unused time credited) or at `period_end`."""
    items = await service.cancel(
        session, subscription=subscription, at=body.at, now=utcnow(), default_plan=default_plan
    )
    set_etag(response, subscription)
    return await views.change_result(session, subscription, items)


@router.post("/resume", response_model=SubscriptionPublic)
async def resume_subscription(
    subscription: SubscriptionToChange,
    session: SessionDep,
    default_plan: DefaultPlan,
    response: Response,
) -> SubscriptionPublic:
    """Undo a cancel at period end."""
    await service.resume(
        session, subscription=subscription, now=utcnow(), default_plan=default_plan
    )
    set_etag(response, subscription)
    return await views.public(session, subscription)
