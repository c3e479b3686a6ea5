"""Stripe follows our void and uncollectible invoices: a pushed invoice voided here (or marked
uncollectible by dunning) is voided (marked uncollectible) in Stripe, so the customer cannot
pay it on Stripe's hosted page. Our transaction never waits on Stripe: the sync loop finds the
pushed invoices whose state differs from what Stripe was last told, calls Stripe with an
Idempotency-Key from our ids, then records what was sent. Stripe down: the next round."""

import uuid
from datetime import datetime

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.models import InvoiceState
from tollgate_billing.stripe_api.client import idempotent
from tollgate_billing.stripe_api.repository import INVOICE_SYNC, StripeRepository
from tollgate_billing.stripe_api.sync_backoff import back_off, is_refusal

logger = structlog.get_logger(__name__)
CLOSE_BATCH = 100


async def close_invoices_in_stripe(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    now: datetime | None = None,
    limit: int = CLOSE_BATCH,
) -> int:
    """One batch; how many invoices were settled for now: Stripe agrees (or cannot any more),
    or Stripe refused and the invoice backs off (ADR 0021). An invoice Stripe cannot be asked
    about now (unreachable) is logged and left for the next round."""
    now = now or utcnow()
    async with sessionmaker() as session:
        pending = await StripeRepository(session).invoices_to_close(limit=limit, now=now)
    settled = 0
    for invoice_id, stripe_id, state in pending:
        try:
            await _follow(client, invoice_id=invoice_id, stripe_id=stripe_id, state=state)
        except stripe.StripeError as error:
            if is_refusal(error):
                await back_off(
                    sessionmaker,
                    kind=INVOICE_SYNC,
                    object_id=invoice_id,
                    error=error,
                    now=now,
                    stripe_id=stripe_id,
                    state=state,
                )
                settled += 1
                continue
            logger.warning(
                "stripe invoice not closed, tried again next round",
                invoice_id=str(invoice_id),
                stripe_id=stripe_id,
                state=state,
                error=str(error),
            )
            continue
        async with sessionmaker() as session, session.begin():
            repository = StripeRepository(session)
            await repository.record_sent(invoice_id, state, now=utcnow())
            await repository.clear_backoff(INVOICE_SYNC, invoice_id)
        settled += 1
    return settled


async def _follow(
    client: stripe.StripeClient, *, invoice_id: uuid.UUID, stripe_id: str, state: str
) -> None:
    """Make the Stripe invoice void or uncollectible like ours; returns once nothing more can
    be done (including: it was paid in Stripe meanwhile, an operator's matter)."""
    try:
        current = await client.v1.invoices.retrieve_async(stripe_id)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
        logger.warning("stripe invoice gone, nothing to close", stripe_id=stripe_id)
        return
    status = current.status
    if status == state:
        return  # done before (a round cut short before recording), or by the dashboard
    if status == "paid":
        # Paid on Stripe's page before Stripe heard of our void: the webhook records the
        # payment on the void invoice and the operator gives the money back.
        logger.error(
            "invoice closed here was paid in stripe",
            invoice_id=str(invoice_id),
            stripe_id=stripe_id,
            state=state,
        )
        return
    if status == "void":
        # Void in Stripe already (dashboard): Stripe cannot go back to uncollectible, and a
        # void invoice cannot be paid there either.
        logger.info("stripe invoice already void", invoice_id=str(invoice_id), stripe_id=stripe_id)
        return
    if status == "draft":
        # A push cut short before finalizing: only a finalized invoice can be voided.
        await client.v1.invoices.finalize_invoice_async(
            stripe_id, None, idempotent("invoice-finalize", invoice_id)
        )
    if state == InvoiceState.VOID.value:
        await client.v1.invoices.void_invoice_async(
            stripe_id, None, idempotent("invoice-void", invoice_id)
        )
    else:
        await client.v1.invoices.mark_uncollectible_async(
            stripe_id, None, idempotent("invoice-uncollectible", invoice_id)
        )
    logger.info(
        "stripe invoice closed", invoice_id=str(invoice_id), stripe_id=stripe_id, state=state
    )
