"""What a payment's outcome does to its invoice and subscription, however it was learned: the
ledger collector, or a provider's webhook (Stripe).

Both functions lock the invoice, record the attempt (once per (provider, reference): a report
delivered twice has one effect) and never commit. Reports may come in any order: a failure
reported after the invoice was paid is recorded and changes nothing."""

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.invoices import service as invoices
from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.payments.models import AttemptOutcome, PaymentAttempt
from tollgate_billing.payments.repository import PaymentRepository
from tollgate_billing.payments.schedule import current_schedule
from tollgate_billing.subscriptions.models import Status
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.service import set_payment_status

logger = structlog.get_logger(__name__)


async def payment_succeeded(
    session: AsyncSession,
    *,
    invoice_id: uuid.UUID,
    now: datetime,
    provider: str,
    reference: str | None,
) -> Invoice:
    """The invoice was paid: marked paid (event invoice.paid), its dunning over, and its
    subscription active again once no other failed invoice is unpaid (mark_paid)."""
    invoice = await _locked(session, invoice_id)
    if not await _record(session, invoice, AttemptOutcome.SUCCEEDED, now, provider, reference):
        return invoice
    if invoice.state not in (InvoiceState.OPEN, InvoiceState.UNCOLLECTIBLE):
        # Paid twice, or a void invoice paid (on Stripe's page before Stripe voided it): money
        # to give back. The invoice stays as it is (a void invoice is never marked paid); the
        # attempt is listed in GET /v1/billing/admin/payments?invoice_state=void.
        logger.error(
            "payment for an invoice that was not owed",
            invoice_id=str(invoice.id),
            state=invoice.state,
            provider=provider,
            reference=reference,
        )
        return invoice
    return await invoices.mark_paid(session, invoice_id=invoice.id, now=now)


async def payment_failed(
    session: AsyncSession,
    *,
    invoice_id: uuid.UUID,
    now: datetime,
    provider: str,
    reference: str | None,
    reason: str,
) -> Invoice:
    """A try to collect the invoice failed: recorded; while the invoice is open, the next
    retry (or the dunning action) is scheduled, event invoice.payment_failed, and the
    subscription becomes past_due."""
    invoice = await _locked(session, invoice_id)
    attempt_number = invoice.payment_attempt_count + 1
    recorded = await _record(
        session, invoice, AttemptOutcome.FAILED, now, provider, reference, reason=reason
    )
    if not recorded or invoice.state != InvoiceState.OPEN:
        return invoice
    schedule = await current_schedule(session)
    invoice.first_failed_at = invoice.first_failed_at or now
    retry_at = schedule.next_retry(invoice.first_failed_at, now)
    action_at = schedule.action_at(invoice.first_failed_at)
    invoice.next_payment_attempt_at = retry_at or action_at
    await InvoiceRepository(session).save(invoice)
    await publish(
        session,
        BillingEvent.INVOICE_PAYMENT_FAILED,
        org_id=invoice.org_id,
        subject=f"invoices/{invoice.id}",
        data={
            **invoices.event_data(invoice),
            "provider": provider,
            "attempt_number": attempt_number,
            "reason": reason,
            "next_attempt_at": retry_at.isoformat() if retry_at else None,
            "dunning_action": schedule.action.value,
            "dunning_action_at": action_at.isoformat(),
        },
    )
    logger.info(
        "payment failed",
        invoice_id=str(invoice.id),
        attempt_number=attempt_number,
        reason=reason,
        next_attempt_at=retry_at,
    )
    subscription = await SubscriptionRepository(session).of_org(invoice.org_id, for_update=True)
    if subscription is not None and subscription.status != Status.SUSPENDED:
        await set_payment_status(
            session, subscription=subscription, status=Status.PAST_DUE, now=now
        )
    return invoice


async def _locked(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await InvoiceRepository(session).issued(invoice_id, for_update=True)
    if invoice is None:
        raise invoices.InvoiceNotFoundError("No such invoice.")
    return invoice


async def _record(
    session: AsyncSession,
    invoice: Invoice,
    outcome: AttemptOutcome,
    now: datetime,
    provider: str,
    reference: str | None,
    *,
    reason: str | None = None,
) -> bool:
    """Record the attempt on the locked invoice; False when it was recorded before."""
    attempt = PaymentAttempt(
        invoice_id=invoice.id,
        org_id=invoice.org_id,
        customer_id=invoice.customer_id,
        provider=provider,
        reference=reference,
        outcome=outcome.value,
        amount=invoice.total,
        currency=invoice.currency,
        failure_reason=reason,
        attempt_number=invoice.payment_attempt_count + 1,
        created_at=now,
    )
    if not await PaymentRepository(session).add_attempt(attempt):
        logger.info("payment outcome already recorded", provider=provider, reference=reference)
        return False
    invoice.payment_attempt_count += 1
    await InvoiceRepository(session).save(invoice)
    return True
