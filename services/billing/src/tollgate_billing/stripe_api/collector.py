"""The StripeCollector (payments.collector's protocol): push the invoice if not yet, ask Stripe
to pay it with the customer's default method, and apply what the answer says. The webhook
reports the same outcome again; outcomes are idempotent by reference, so it counts once."""

import uuid
from datetime import datetime

import stripe
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.invoices.models import InvoiceState
from tollgate_billing.payments.methods import current_payment_method
from tollgate_billing.payments.models import Provider
from tollgate_billing.payments.outcomes import payment_failed, payment_succeeded
from tollgate_billing.stripe_api.client import idempotent
from tollgate_billing.stripe_api.errors import StripeUnavailableError
from tollgate_billing.stripe_api.invoices import load_issued, push_invoice

logger = structlog.get_logger(__name__)

NO_PAYMENT_METHOD = "no_payment_method"
METHOD_UNAVAILABLE = "payment_method_unavailable"


def failure_reference(stripe_invoice: stripe.Invoice) -> str:
    """One failed attempt of a Stripe invoice, the same whether the pay call's answer or the
    webhook reports it: Stripe counts the invoice's attempts."""
    return f"{stripe_invoice.id}/attempt/{stripe_invoice.attempt_count}"


class StripeCollector:
    provider = Provider.STRIPE.value

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    async def collect(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        invoice_id: uuid.UUID,
        now: datetime,
    ) -> None:
        """Nothing recorded when Stripe cannot be reached (StripeUnavailableError): the next
        try sends the same Idempotency-Keys, so it finishes what this one started."""
        try:
            await self._collect(sessionmaker, invoice_id=invoice_id, now=now)
        except stripe.StripeError as error:
            raise StripeUnavailableError(
                f"Stripe could not take the payment now ({type(error).__name__}); "
                "it is tried again."
            ) from error

    async def _collect(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        invoice_id: uuid.UUID,
        now: datetime,
    ) -> None:
        loaded = await load_issued(sessionmaker, invoice_id)
        if loaded is None or loaded[0].state != InvoiceState.OPEN:
            return
        invoice, lines = loaded
        async with sessionmaker() as session:
            method = await current_payment_method(session, customer_id=invoice.customer_id)
        stripe_invoice = await push_invoice(sessionmaker, self.client, invoice=invoice, lines=lines)
        if stripe_invoice.status == "open":
            if method is None or method.provider != self.provider:
                reason = NO_PAYMENT_METHOD if method is None else METHOD_UNAVAILABLE
                await self._failed(sessionmaker, invoice_id, now, reference=None, reason=reason)
                return
            try:
                # The attempt's number in the key: a retry of this call is replayed by Stripe,
                # the next attempt (after a failure was recorded) is a new payment.
                stripe_invoice = await self.client.v1.invoices.pay_async(
                    stripe_invoice.id,
                    None,
                    idempotent("invoice-pay", invoice.id, invoice.payment_attempt_count + 1),
                )
            except stripe.CardError as error:
                declined = await self.client.v1.invoices.retrieve_async(stripe_invoice.id)
                await self._failed(
                    sessionmaker,
                    invoice_id,
                    now,
                    reference=failure_reference(declined),
                    reason=error.code or "card_declined",
                )
                return
        if stripe_invoice.status == "paid":
            async with sessionmaker() as session, session.begin():
                await payment_succeeded(
                    session,
                    invoice_id=invoice_id,
                    now=now,
                    provider=self.provider,
                    reference=stripe_invoice.id,
                )
        elif stripe_invoice.status == "open":
            # Still processing (bank debits): the webhook reports the outcome.
            logger.info("stripe payment pending", invoice_id=str(invoice_id))
        else:
            # Voided or marked uncollectible in Stripe's dashboard: an operator's matter.
            logger.warning(
                "invoice closed in stripe without payment",
                invoice_id=str(invoice_id),
                stripe_id=stripe_invoice.id,
                status=stripe_invoice.status,
            )

    async def _failed(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        invoice_id: uuid.UUID,
        now: datetime,
        *,
        reference: str | None,
        reason: str,
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await payment_failed(
                session,
                invoice_id=invoice_id,
                now=now,
                provider=self.provider,
                reference=reference,
                reason=reason,
            )
