"""A customer's one current payment method: what a receipt shows of it, never the card number
(the provider keeps that behind `reference`)."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.customers.models import Customer
from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.payments.models import PaymentMethod
from tollgate_billing.payments.repository import PaymentRepository


async def set_payment_method(
    session: AsyncSession,
    *,
    customer: Customer,
    provider: str,
    reference: str | None,
    brand: str,
    last4: str,
    exp_month: int,
    exp_year: int,
    now: datetime,
) -> PaymentMethod:
    """Make this the customer's method, replacing the current one; event
    payment_method.updated."""
    method = await PaymentRepository(session).put_method(
        PaymentMethod(
            customer_id=customer.id,
            org_id=customer.org_id,
            provider=provider,
            reference=reference,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            created_at=now,
        )
    )
    await _publish(session, method, BillingEvent.PAYMENT_METHOD_UPDATED)
    return method


async def current_payment_method(
    session: AsyncSession, *, customer_id: uuid.UUID
) -> PaymentMethod | None:
    return await PaymentRepository(session).method_of(customer_id)


async def remove_payment_method(session: AsyncSession, *, customer: Customer) -> bool:
    """Forget the customer's method (event payment_method.removed); False when none."""
    method = await PaymentRepository(session).remove_method(customer.id)
    if method is None:
        return False
    await _publish(session, method, BillingEvent.PAYMENT_METHOD_REMOVED)
    return True


def event_data(method: PaymentMethod) -> dict[str, object]:
    """The facts of tollgate.billing.payment_method.* (docs/events.md): never a card number."""
    return {
        "payment_method_id": str(method.id),
        "organization_id": str(method.org_id),
        "customer_id": str(method.customer_id),
        "provider": method.provider,
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
    }


async def _publish(session: AsyncSession, method: PaymentMethod, event: BillingEvent) -> None:
    await publish(
        session,
        event,
        org_id=method.org_id,
        subject=f"customers/{method.customer_id}/payment-method",
        data=event_data(method),
    )
