"""Every billing customer gets a Stripe customer: a loop in every replica makes the missing
ones, and whoever needs one first (an invoice push, a Checkout Session) makes it at once."""

import uuid

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.stripe_api.client import CUSTOMER_METADATA, ORG_METADATA, idempotent
from tollgate_billing.stripe_api.repository import StripeRepository

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
        stored = await StripeRepository(session).add_customer(customer.id, created.id)
    logger.info("stripe customer created", customer_id=str(customer.id), stripe_id=stored)
    return stored


async def sync_customers(
    sessionmaker: async_sessionmaker[AsyncSession], client: stripe.StripeClient
) -> int:
    """Give a Stripe customer to customers without one (a batch per call); how many were made.
    One that Stripe refuses is logged and tried again next round, the others go on."""
    async with sessionmaker() as session:
        missing = await StripeRepository(session).customers_without_stripe(limit=SYNC_BATCH)
    made = 0
    for customer_id in missing:
        try:
            await ensure_stripe_customer(sessionmaker, client, customer_id=customer_id)
            made += 1
        except stripe.StripeError as error:
            logger.warning(
                "stripe customer not created", customer_id=str(customer_id), error=str(error)
            )
    return made
