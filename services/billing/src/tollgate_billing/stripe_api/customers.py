"""Every billing customer gets a Stripe customer: a loop in every replica makes the missing
ones, and whoever needs one first (an invoice push, a Checkout Session) makes it at once."""

import uuid
from datetime import datetime

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.db_types import utcnow
from tollgate_billing.stripe_api.client import CUSTOMER_METADATA, ORG_METADATA, idempotent
from tollgate_billing.stripe_api.repository import CUSTOMER_SYNC, StripeRepository
from tollgate_billing.stripe_api.sync_backoff import back_off, is_refusal

logger = structlog.get_logger(__name__)
SYNC_BATCH = 100


async def ensure_stripe_customer(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    customer_id: uuid.UUID,
) -> str:
    """The customer's Stripe id, made now if it has none. The call runs outside any
    transaction; two replicas making the same customer at once send the same Idempotency-Key
    (tollgate-customer-<id>), so Stripe makes one and both record it."""
    async with sessionmaker() as session:
        existing = await StripeRepository(session).stripe_customer_of(customer_id)
        customer = await CustomerRepository(session).get(customer_id)
    if existing is not None:
        return existing
    if customer is None:
        raise LookupError(f"no billing customer {customer_id}")
    created = await client.v1.customers.create_async(
        {
            "name": customer.name,
            "metadata": {CUSTOMER_METADATA: str(customer.id), ORG_METADATA: str(customer.org_id)},
        },
        idempotent("customer", customer.id),
    )
    async with sessionmaker() as session, session.begin():
        repository = StripeRepository(session)
        stored = await repository.add_customer(customer.id, created.id)
        await repository.clear_backoff(CUSTOMER_SYNC, customer.id)
    logger.info("stripe customer created", customer_id=str(customer.id), stripe_id=stored)
    return stored


async def sync_customers(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    now: datetime | None = None,
    limit: int = SYNC_BATCH,
) -> int:
    """Give a Stripe customer to customers without one (a batch per call); how many rows were
    settled for now: made, or refused by Stripe and so backing off (ADR 0021). A refused one is
    not tried again before its backoff ends; Stripe unreachable: tried again next round."""
    now = now or utcnow()
    async with sessionmaker() as session:
        missing = await StripeRepository(session).customers_without_stripe(limit=limit, now=now)
    handled = 0
    for customer_id in missing:
        try:
            await ensure_stripe_customer(sessionmaker, client, customer_id=customer_id)
        except stripe.StripeError as error:
            if not is_refusal(error):
                logger.warning(
                    "stripe customer not created, tried again next round",
                    customer_id=str(customer_id),
                    error=str(error),
                )
                continue
            await back_off(
                sessionmaker, kind=CUSTOMER_SYNC, object_id=customer_id, error=error, now=now
            )
        handled += 1
    return handled
