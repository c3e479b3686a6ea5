"""The Stripe sync loop of every replica: customers without a Stripe customer get one, and
pushed invoices void or uncollectible here are made so in Stripe. Each round does what is
missing; a row Stripe refuses backs off (a minute doubling to an hour, sync_backoff.py), one
that fails otherwise (Stripe unreachable) is tried again next round."""

import asyncio

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.stripe_api.customers import SYNC_BATCH, sync_customers
from tollgate_billing.stripe_api.invoice_closing import CLOSE_BATCH, close_invoices_in_stripe
from tollgate_billing.stripe_api.sync_backoff import report_backoffs

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
                pass  # a full batch settled: more may wait (backed-off rows are skipped)
        except Exception:
            logger.exception("stripe customer sync round failed")
        try:
            while await close_invoices_in_stripe(sessionmaker, client) == CLOSE_BATCH:
                pass
        except Exception:
            logger.exception("stripe invoice closing round failed")
        try:
            await report_backoffs(sessionmaker)
        except Exception:
            logger.exception("stripe sync backoff count failed")
        await asyncio.sleep(interval_seconds)
