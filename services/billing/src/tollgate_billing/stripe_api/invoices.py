"""Our invoice in Stripe: one invoice item per line (discounts and credits are negative items),
then the invoice, finalized. Every call has an Idempotency-Key from our ids, so a push cut
short and run again makes each object once."""

import uuid
from collections.abc import Sequence

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.invoices.models import Invoice, InvoiceLine
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.stripe_api.client import (
    INVOICE_METADATA,
    LINE_METADATA,
    idempotent,
    metadata_of,
)
from tollgate_billing.stripe_api.customers import ensure_stripe_customer
from tollgate_billing.stripe_api.push_lock import customer_push_lock
from tollgate_billing.stripe_api.repository import StripeRepository
from tollgate_shared.errors import ConflictError, ServiceUnavailableError

logger = structlog.get_logger(__name__)
# Stripe lists 100 at most per page: far more lines than an invoice of ours has.
LIST_LIMIT = 100


class InvoicePushBlockedError(ServiceUnavailableError):
    """The Stripe customer has pending items of another of our invoices (a push of it was cut
    short): a new invoice would take them in. That invoice's next push takes them; this one
    waits for its next round."""

    slug, title = "stripe-invoice-waiting", "The invoice waits for another one in Stripe"


class InvoicePushMismatchError(ConflictError):
    """The Stripe invoice does not add up to ours: left for an operator, never paid."""

    slug, title = "stripe-invoice-mismatch", "The invoice in Stripe differs from ours"


async def push_invoice(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    invoice: Invoice,
    lines: Sequence[InvoiceLine],
) -> stripe.Invoice:
    """The issued invoice's Stripe invoice, finalized: made now unless it was pushed before.
    Pushes of one customer run one at a time (push_lock): Stripe would put one invoice's
    pending items on the other."""
    async with customer_push_lock(sessionmaker, invoice.customer_id):
        return await _push(sessionmaker, client, invoice=invoice, lines=lines)


async def _push(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    invoice: Invoice,
    lines: Sequence[InvoiceLine],
) -> stripe.Invoice:
    async with sessionmaker() as session:
        pushed = await StripeRepository(session).stripe_invoice_of(invoice.id)
    if pushed is None:
        stripe_invoice = await _create(sessionmaker, client, invoice=invoice, lines=lines)
    else:
        stripe_invoice = await client.v1.invoices.retrieve_async(pushed)
    expected = sum(line.amount for line in lines)
    if stripe_invoice.subtotal != expected:
        raise InvoicePushMismatchError(
            f"Stripe invoice {stripe_invoice.id} has a subtotal of {stripe_invoice.subtotal}, "
            f"invoice {invoice.number} {expected}: it is not charged; the operator looks into it."
        )
    if stripe_invoice.status == "draft":
        stripe_invoice = await client.v1.invoices.finalize_invoice_async(
            stripe_invoice.id, None, idempotent("invoice-finalize", invoice.id)
        )
    return stripe_invoice


async def _create(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: stripe.StripeClient,
    *,
    invoice: Invoice,
    lines: Sequence[InvoiceLine],
) -> stripe.Invoice:
    customer = await ensure_stripe_customer(sessionmaker, client, customer_id=invoice.customer_id)
    ours = str(invoice.id)
    # Stripe puts every pending item of the customer on a new invoice: refuse to take in
    # another invoice's (all of them, pending or not, are listed: filtered here).
    items = await client.v1.invoice_items.list_async({"customer": customer, "limit": LIST_LIMIT})
    foreign = [
        item.id
        for item in items.data
        if item.invoice is None and metadata_of(item).get(INVOICE_METADATA) != ours
    ]
    if foreign:
        raise InvoicePushBlockedError(
            f"Stripe customer {customer} has pending items of another invoice ({foreign}), "
            "whose push goes first: try again in a few minutes."
        )
    for line in lines:
        await client.v1.invoice_items.create_async(
            {
                "customer": customer,
                "amount": line.amount,
                "currency": invoice.currency.lower(),
                "description": line.description,
                "metadata": {
                    INVOICE_METADATA: ours,
                    LINE_METADATA: str(line.id),
                    "position": str(line.position),
                },
            },
            idempotent("invoice-line", line.id),
        )
    stripe_invoice = await client.v1.invoices.create_async(
        {
            "customer": customer,
            "auto_advance": False,  # Tollgate's dunning decides when to collect
            "pending_invoice_items_behavior": "include",
            "description": f"Invoice {invoice.number}",
            "metadata": {INVOICE_METADATA: ours, "tollgate_invoice_number": invoice.number or ""},
        },
        idempotent("invoice", invoice.id),
    )
    async with sessionmaker() as session, session.begin():
        await StripeRepository(session).add_invoice(invoice.id, stripe_invoice.id)
    logger.info("invoice pushed to stripe", invoice_id=ours, stripe_id=stripe_invoice.id)
    return stripe_invoice


async def load_issued(
    sessionmaker: async_sessionmaker[AsyncSession], invoice_id: uuid.UUID
) -> tuple[Invoice, Sequence[InvoiceLine]] | None:
    async with sessionmaker() as session:
        repository = InvoiceRepository(session)
        invoice = await repository.issued(invoice_id, for_update=False)
        if invoice is None:
            return None
        return invoice, await repository.lines_of(invoice.id)
