"""Collecting an open invoice through the payment provider: the PaymentCollector protocol, the
ledger's (no provider), and the one the settings choose.

A collector owns its transactions, so a provider's collector can call the network outside
any (the outcome is applied afterwards, in a transaction of its own, or by webhook)."""

import uuid
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.config import BillingSettings
from tollgate_billing.invoices.models import InvoiceState
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.service import mark_paid
from tollgate_billing.payments.ledger import charge_failure
from tollgate_billing.payments.methods import current_payment_method
from tollgate_billing.payments.models import Provider
from tollgate_billing.payments.outcomes import payment_failed, payment_succeeded

logger = structlog.get_logger(__name__)

NO_PAYMENT_METHOD = "no_payment_method"


class PaymentCollector(Protocol):
    provider: str

    async def collect(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        invoice_id: uuid.UUID,
        now: datetime,
    ) -> None:
        """Try to collect the invoice now; the outcome goes through payments.outcomes. An
        invoice no longer open is left alone."""
        ...


class LedgerCollector:
    """No payment provider: the method on file is a sandbox test card whose outcome is fixed
    (payments.ledger), decided and applied in one transaction."""

    provider = Provider.LEDGER.value

    async def collect(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        invoice_id: uuid.UUID,
        now: datetime,
    ) -> None:
        async with sessionmaker() as session, session.begin():
            invoice = await InvoiceRepository(session).issued(invoice_id, for_update=True)
            if invoice is None or invoice.state != InvoiceState.OPEN:
                return
            if invoice.total <= 0:  # open from before payments existed: nothing to charge
                await mark_paid(session, invoice_id=invoice_id, now=now)
                return
            method = await current_payment_method(session, customer_id=invoice.customer_id)
            if method is None:
                failure: str | None = NO_PAYMENT_METHOD
            elif method.provider != self.provider:
                failure = "payment_method_unavailable"  # a provider's method, that provider off
            else:
                failure = charge_failure(method.last4)
            if failure is None:
                await payment_succeeded(
                    session, invoice_id=invoice_id, now=now, provider=self.provider, reference=None
                )
            else:
                await payment_failed(
                    session,
                    invoice_id=invoice_id,
                    now=now,
                    provider=self.provider,
                    reference=None,
                    reason=failure,
                )


def collector_for(settings: BillingSettings) -> PaymentCollector:
    """The collector of the configured payment provider: the ledger when none is."""
    if settings.stripe_enabled:
        # Imported here: the Stripe collector itself builds on this module's outcomes.
        from tollgate_billing.stripe_api.client import stripe_client
        from tollgate_billing.stripe_api.collector import StripeCollector

        return StripeCollector(stripe_client(settings))
    return LedgerCollector()
