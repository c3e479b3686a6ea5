"""Every event the billing service publishes (documented in docs/events.md)."""

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.config import SERVICE
from tollgate_shared.events.envelope import new_event
from tollgate_shared.events.outbox import enqueue


class BillingEvent(StrEnum):
    CUSTOMER_CREATED = "tollgate.billing.customer.created"
    SUBSCRIPTION_CREATED = "tollgate.billing.subscription.created"
    SUBSCRIPTION_UPDATED = "tollgate.billing.subscription.updated"
    SUBSCRIPTION_CANCELED = "tollgate.billing.subscription.canceled"
    INVOICE_FINALIZED = "tollgate.billing.invoice.finalized"
    INVOICE_PAID = "tollgate.billing.invoice.paid"
    INVOICE_VOIDED = "tollgate.billing.invoice.voided"
    INVOICE_PAYMENT_FAILED = "tollgate.billing.invoice.payment_failed"
    INVOICE_MARKED_UNCOLLECTIBLE = "tollgate.billing.invoice.marked_uncollectible"
    PAYMENT_METHOD_UPDATED = "tollgate.billing.payment_method.updated"
    PAYMENT_METHOD_REMOVED = "tollgate.billing.payment_method.removed"
    ONBOARDING_COMPLETED = "tollgate.billing.onboarding.completed"


async def publish(
    session: AsyncSession,
    event_type: BillingEvent,
    *,
    org_id: uuid.UUID,
    subject: str,
    data: dict[str, Any],
) -> None:
    """Write the event to the outbox in the caller's transaction."""
    await enqueue(
        session,
        new_event(service=SERVICE, type_=event_type, org_id=org_id, subject=subject, data=data),
    )
