"""Collecting a payment method through Stripe Checkout in setup mode: Stripe's page takes the
card (we never see it), and checkout.session.completed (webhooks/) records the method."""

import uuid

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.config import BillingSettings
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.customers.service import CustomerNotFoundError
from tollgate_billing.stripe_api.client import CUSTOMER_METADATA, ORG_METADATA, idempotent
from tollgate_billing.stripe_api.customers import ensure_stripe_customer
from tollgate_billing.stripe_api.schemas import CheckoutSessionPublic


async def start_setup_checkout(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    settings: BillingSettings,
    *,
    org_id: uuid.UUID,
) -> CheckoutSessionPublic:
    """A new Checkout Session for the organisation's customer (each request its own: a
    session expires, and an abandoned one must not block the next)."""
    async with sessionmaker() as session:
        customer = await CustomerRepository(session).of_org(org_id)
        plan = await PlanRepository(session).get(customer.plan_key) if customer else None
    if customer is None or plan is None:
        raise CustomerNotFoundError("This organisation has no billing customer yet.")
    stripe_customer = await ensure_stripe_customer(sessionmaker, client, customer_id=customer.id)
    checkout = await client.v1.checkout.sessions.create_async(
        {
            "mode": "setup",
            "customer": stripe_customer,
            # Setup mode asks for the currency the methods will pay in: the plan's.
            "currency": plan.currency.lower(),
            "success_url": settings.stripe_checkout_success_url,
            "cancel_url": settings.stripe_checkout_cancel_url,
            "metadata": {CUSTOMER_METADATA: str(customer.id), ORG_METADATA: str(org_id)},
        },
        # A network retry of this one request is replayed, never a second session.
        idempotent("checkout", customer.id, uuid.uuid4()),
    )
    assert checkout.url is not None  # hosted mode always has one
    return CheckoutSessionPublic(id=checkout.id, url=checkout.url)
