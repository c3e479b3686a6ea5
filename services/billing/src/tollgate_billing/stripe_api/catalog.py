"""`tollgate-billing stripe-sync-catalog`: the catalog as Stripe products and plans.

One product per plan (id tollgate-<plan key>) and one Stripe plan per fee: per interval the plan
is sold in, named by its amount (tollgate-<key>-<interval>-<amount><currency>), since a Stripe
plan's amount never changes. Metered charges are not Stripe plans: usage reaches Stripe as the
invoice's own lines. Running it again makes nothing twice: what is recorded here is skipped,
every call carries an Idempotency-Key, and an id Stripe already has is read instead."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.stripe_api.client import PLAN_METADATA, already_exists, idempotent
from tollgate_billing.stripe_api.models import StripePlan
from tollgate_billing.stripe_api.repository import StripeRepository
from tollgate_billing.subscriptions.models import Interval
from tollgate_billing.subscriptions.proration import fee_of

logger = structlog.get_logger(__name__)


@dataclass
class CatalogSync:
    """The Stripe ids this run created (made before, or by another run, are not listed)."""

    products_created: list[str] = field(default_factory=list)
    plans_created: list[str] = field(default_factory=list)


def stripe_plan_id(plan: Plan, interval: Interval, amount: int) -> str:
    return f"tollgate-{plan.key}-{interval.value}-{amount}{plan.currency.lower()}"


async def _create_or_find(
    create: Callable[[], Awaitable[object]], find: Callable[[], Awaitable[object]]
) -> bool:
    """Create the object with our id; True when this call made it, False when Stripe already
    had it (made by an earlier run whose record here was lost, or more than a day ago)."""
    try:
        await create()
        return True
    except stripe.StripeError as error:
        if not already_exists(error):
            raise
        await find()
        return False


async def sync_catalog(
    sessionmaker: async_sessionmaker[AsyncSession], client: stripe.StripeClient
) -> CatalogSync:
    async with sessionmaker() as session:
        plans = await PlanRepository(session).list(include_archived=False)
    result = CatalogSync()
    for plan in plans:
        product_id = await _sync_product(sessionmaker, client, plan, result)
        for interval in Interval:
            amount = fee_of(plan, interval)
            if amount is not None:
                await _sync_plan(sessionmaker, client, plan, interval, amount, product_id, result)
    logger.info(
        "stripe catalog synced",
        products_created=len(result.products_created),
        plans_created=len(result.plans_created),
    )
    return result


async def _sync_product(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    plan: Plan,
    result: CatalogSync,
) -> str:
    async with sessionmaker() as session:
        recorded = await StripeRepository(session).product_of(plan.key)
    if recorded is not None:
        return recorded
    product_id = f"tollgate-{plan.key}"
    created = await _create_or_find(
        lambda: client.v1.products.create_async(
            {"id": product_id, "name": plan.name, "metadata": {PLAN_METADATA: plan.key}},
            idempotent("product", plan.key),
        ),
        lambda: client.v1.products.retrieve_async(product_id),
    )
    async with sessionmaker() as session, session.begin():
        await StripeRepository(session).add_product(plan.key, product_id)
    if created:
        result.products_created.append(product_id)
    return product_id


async def _sync_plan(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    plan: Plan,
    interval: Interval,
    amount: int,
    product_id: str,
    result: CatalogSync,
) -> None:
    plan_id = stripe_plan_id(plan, interval, amount)
    async with sessionmaker() as session:
        if await StripeRepository(session).has_plan(plan_id):
            return
    created = await _create_or_find(
        lambda: client.v1.plans.create_async(
            {
                "id": plan_id,
                "product": product_id,
                "amount": amount,
                "currency": plan.currency.lower(),
                "interval": interval.value,
                "nickname": f"{plan.name} ({interval.value}ly)",
                "metadata": {PLAN_METADATA: plan.key},
            },
            idempotent("plan", plan_id),
        ),
        lambda: client.v1.plans.retrieve_async(plan_id),
    )
    async with sessionmaker() as session, session.begin():
        await StripeRepository(session).add_plan(
            StripePlan(
                stripe_plan_id=plan_id,
                plan_key=plan.key,
                interval=interval.value,
                currency=plan.currency,
                amount=amount,
            )
        )
    if created:
        result.plans_created.append(plan_id)
