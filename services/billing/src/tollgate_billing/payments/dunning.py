"""The dunning action: what happens to an invoice still unpaid at the end of the grace period
after its first failure (ADR 0020)."""

from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.invoices import service as invoices
from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.payments.models import DunningAction
from tollgate_billing.subscriptions.models import Status
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.service import downgrade_unpaid, set_payment_status

logger = structlog.get_logger(__name__)


async def apply_dunning_action(
    session: AsyncSession,
    *,
    invoice: Invoice,
    action: DunningAction,
    now: datetime,
    default_plan: str,
) -> None:
    """On the locked open invoice: "downgrade" marks it uncollectible (event
    invoice.marked_uncollectible) and moves the subscription to the default plan, canceled;
    "suspend" suspends the subscription, the invoice stays open for the customer to pay. No
    automatic retry follows either."""
    invoice.next_payment_attempt_at = None
    if action == DunningAction.DOWNGRADE:
        invoice.state = InvoiceState.UNCOLLECTIBLE.value
    await InvoiceRepository(session).save(invoice)
    if action == DunningAction.DOWNGRADE:
        await publish(
            session,
            BillingEvent.INVOICE_MARKED_UNCOLLECTIBLE,
            org_id=invoice.org_id,
            subject=f"invoices/{invoice.id}",
            data=invoices.event_data(invoice),
        )
    subscription = await SubscriptionRepository(session).of_org(invoice.org_id, for_update=True)
    if subscription is not None:
        if action == DunningAction.DOWNGRADE:
            await downgrade_unpaid(
                session, subscription=subscription, now=now, default_plan=default_plan
            )
        else:
            await set_payment_status(
                session, subscription=subscription, status=Status.SUSPENDED, now=now
            )
    logger.info("dunning action applied", invoice_id=str(invoice.id), action=action.value)
