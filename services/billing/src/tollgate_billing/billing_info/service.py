import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.billing_info.schemas import BillingInfo
from tollgate_billing.catalog.service import get_plan, to_public
from tollgate_billing.discounts.service import DiscountNotFoundError, customer_discount
from tollgate_billing.invoices.metering_usage import MeteringUnavailableError, MeteringUsageClient
from tollgate_billing.invoices.service import upcoming_invoice
from tollgate_billing.payments.methods import current_payment_method
from tollgate_billing.payments.service import method_view
from tollgate_billing.subscriptions.service import subscription_as_of
from tollgate_billing.subscriptions.views import to_public as subscription_view

logger = structlog.get_logger(__name__)


async def billing_info(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    metering: MeteringUsageClient,
    now: datetime,
    default_plan: str,
) -> BillingInfo:
    """Plan, subscription, payment method, discount, usage and projected invoice. Metering
    being down costs the usage parts only: the rest of the page still shows."""
    subscription = await subscription_as_of(
        session, org_id=org_id, now=now, default_plan=default_plan
    )
    plan = await get_plan(session, key=subscription.plan_key, include_archived=True)
    method = await current_payment_method(session, customer_id=subscription.customer_id)
    try:
        discount = await customer_discount(session, org_id=org_id)
    except DiscountNotFoundError:
        discount = None
    unavailable: list[str] = []
    try:
        upcoming = await upcoming_invoice(session, org_id=org_id, metering=metering, now=now)
    except MeteringUnavailableError:
        logger.warning("billing info without usage: metering unreachable", org_id=str(org_id))
        upcoming, unavailable = None, ["usage", "upcoming_invoice"]
    return BillingInfo(
        organization_id=org_id,
        plan=to_public(plan),
        subscription=subscription_view(subscription, plan),
        payment_method=method_view(method) if method else None,
        discount=discount,
        usage=upcoming.usage if upcoming else None,
        upcoming_invoice=upcoming,
        unavailable=unavailable,
        as_of=now,
    )
