"""The rules behind the payment endpoints: the organisation's payment method, paying an
invoice now, the operator's list of attempts. Takes a session, never commits (paying runs the
collector, which owns its transactions)."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.customers.models import Customer
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.customers.service import CustomerNotFoundError
from tollgate_billing.invoices import service as invoices
from tollgate_billing.invoices.models import InvoiceState
from tollgate_billing.invoices.schemas import InvoicePublic
from tollgate_billing.payments.collector import PaymentCollector
from tollgate_billing.payments.ledger import TEST_CARDS
from tollgate_billing.payments.methods import (
    current_payment_method,
    remove_payment_method,
    set_payment_method,
)
from tollgate_billing.payments.models import AttemptOutcome, PaymentAttempt, PaymentMethod, Provider
from tollgate_billing.payments.repository import PaymentRepository
from tollgate_billing.payments.schemas import (
    LedgerCard,
    PaymentAttemptPage,
    PaymentAttemptPublic,
    PaymentMethodPublic,
)
from tollgate_shared.errors import ConflictError, NotFoundError, ProblemError
from tollgate_shared.pagination import PageParams, split_page


class PaymentMethodNotFoundError(NotFoundError):
    slug, title = "payment-method-not-found", "No payment method"


class ProviderCollectsMethodsError(ConflictError):
    slug, title = "payment-method-through-provider", "Payment methods come from the provider"


class PaymentFailedError(ProblemError):
    status, slug, title = 402, "payment-failed", "Payment failed"


async def _customer(session: AsyncSession, org_id: uuid.UUID) -> Customer:
    customer = await CustomerRepository(session).of_org(org_id)
    if customer is None:
        raise CustomerNotFoundError("This organisation has no billing customer yet.")
    return customer


def method_view(method: PaymentMethod) -> PaymentMethodPublic:
    return PaymentMethodPublic.model_validate(method, from_attributes=True)


async def put_ledger_card(
    session: AsyncSession, *, org_id: uuid.UUID, card: LedgerCard, provider: str, now: datetime
) -> PaymentMethodPublic:
    """Ledger mode: the test card becomes the organisation's method (only its brand, last four
    digits and expiry are kept)."""
    if provider != Provider.LEDGER:
        raise ProviderCollectsMethodsError(
            "Card details are entered on the payment provider's page: "
            "POST /v1/billing/payment-method/checkout."
        )
    customer = await _customer(session, org_id)
    method = await set_payment_method(
        session,
        customer=customer,
        provider=Provider.LEDGER.value,
        reference=None,
        brand=TEST_CARDS[card.card_number].brand,
        last4=card.card_number[-4:],
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        now=now,
    )
    return method_view(method)


async def read_method(session: AsyncSession, *, org_id: uuid.UUID) -> PaymentMethodPublic:
    customer = await _customer(session, org_id)
    method = await current_payment_method(session, customer_id=customer.id)
    if method is None:
        raise PaymentMethodNotFoundError("This organisation has no payment method on file.")
    return method_view(method)


async def delete_method(session: AsyncSession, *, org_id: uuid.UUID) -> None:
    customer = await _customer(session, org_id)
    if not await remove_payment_method(session, customer=customer):
        raise PaymentMethodNotFoundError("This organisation has no payment method on file.")


async def pay_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    org_id: uuid.UUID,
    invoice_id: uuid.UUID,
    collector: PaymentCollector,
    now: datetime,
) -> InvoicePublic:
    """The customer pays the open invoice now with the method on file. A failure is recorded
    like any other (it counts in dunning) and answered 402; a provider still processing
    leaves the invoice open."""
    async with sessionmaker() as session:
        invoice = await invoices.get_invoice(session, org_id=org_id, invoice_id=invoice_id)
        if invoice.state != InvoiceState.OPEN:
            raise invoices.InvoiceStateError(
                f"Only an open invoice can be paid; this one is {invoice.state}.",
                state=invoice.state,
            )
        attempts_before = invoice.payment_attempt_count
    await collector.collect(sessionmaker, invoice_id=invoice_id, now=now)
    async with sessionmaker() as session:
        paid = await invoices.read_invoice(session, org_id=org_id, invoice_id=invoice_id)
        latest = (await PaymentRepository(session).attempts_of(invoice_id))[attempts_before:]
    failed = [attempt for attempt in latest if attempt.outcome == AttemptOutcome.FAILED]
    if paid.state == InvoiceState.OPEN and failed:
        reason = failed[-1].failure_reason
        where = (
            "PUT /v1/billing/payment-method"
            if collector.provider == Provider.LEDGER
            else "POST /v1/billing/payment-method/checkout"
        )
        raise PaymentFailedError(
            f"The payment failed ({reason}). Update the payment method ({where}) and pay again.",
            reason=reason,
        )
    if paid.state not in (InvoiceState.OPEN, InvoiceState.PAID):
        # Dunning ended it (uncollectible) or an operator voided it while this call waited.
        raise invoices.InvoiceStateError(
            f"The invoice became {paid.state} before it could be paid.", state=paid.state
        )
    return paid


def attempt_view(attempt: PaymentAttempt, invoice_state: str) -> PaymentAttemptPublic:
    return PaymentAttemptPublic(
        id=attempt.id,
        invoice_id=attempt.invoice_id,
        organization_id=attempt.org_id,
        customer_id=attempt.customer_id,
        provider=attempt.provider,
        reference=attempt.reference,
        outcome=AttemptOutcome(attempt.outcome).value,
        amount=attempt.amount,
        currency=attempt.currency,
        failure_reason=attempt.failure_reason,
        attempt_number=attempt.attempt_number,
        invoice_state=invoice_state,
        created_at=attempt.created_at,
    )


async def list_attempts(
    session: AsyncSession,
    *,
    outcome: AttemptOutcome | None,
    invoice_state: InvoiceState | None = None,
    page: PageParams,
) -> PaymentAttemptPage:
    """Payment attempts of every organisation, newest first (cursor pagination)."""
    rows = await PaymentRepository(session).page_by_outcome(
        outcome.value if outcome else None,
        invoice_state=invoice_state.value if invoice_state else None,
        limit=page.limit + 1,
        before=(page.cursor.created_at, page.cursor.id) if page.cursor else None,
    )
    kept, next_cursor = split_page(rows, page, lambda row: (row[0].created_at, row[0].id))
    return PaymentAttemptPage(
        items=[attempt_view(attempt, state) for attempt, state in kept],
        next_cursor=next_cursor,
    )
