"""The Stripe sync loop of every replica: customers without a Stripe customer get one, and
pushed invoices void or uncollectible here are made so in Stripe. Each round does what is
missing; whatever fails is tried again next round."""

import asyncio

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.stripe_api.customers import SYNC_BATCH, sync_customers
from tollgate_billing.stripe_api.invoice_closing import CLOSE_BATCH, close_invoices_in_stripe

logger = structlog.get_logger(__name__)


async def sync_stripe_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    interval_seconds: float,
) -> None:
    while True:
        try:
            while await sync_customers(sessionmaker, client) == SYNC_BATCH:
                pass  # a full batch: more may wait
        except Exception:
            logger.exception("stripe customer sync round failed")
        try:
            while await close_invoices_in_stripe(sessionmaker, client) == CLOSE_BATCH:
                pass
        except Exception:
            logger.exception("stripe invoice closing round failed")
        await asyncio.sleep(interval_seconds)
