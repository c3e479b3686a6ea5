"""Every query on what billing made in Stripe."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col, select

from tollgate_billing.customers.models import Customer
from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.stripe_api.models import (
    StripeCustomer,
    StripeInvoice,
    StripePlan,
    StripeProduct,
    StripeSyncBackoff,
)

CUSTOMER_SYNC, INVOICE_SYNC = "customer", "invoice"


class CheckoutOrder(NamedTuple):
    """A completed Checkout Session and when Stripe made its card (when the customer confirmed
    the page): of two sessions the newer is the one whose card is newer."""

    method_created_at: datetime
    session_id: str

    def is_older_than(self, other: "CheckoutOrder") -> bool:
        """Strictly older: Stripe's times are in seconds, and of two cards made in the same
        second the one delivered last wins (as before the ordering)."""
        return self.method_created_at < other.method_created_at


class StripeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stripe_customer_of(self, customer_id: uuid.UUID) -> str | None:
        row = await self.session.get(StripeCustomer, customer_id)
        return row.stripe_customer_id if row else None

    async def customer_of_stripe(self, stripe_customer_id: str) -> Customer | None:
        result = await self.session.execute(
            select(Customer)
            .join(StripeCustomer, col(StripeCustomer.customer_id) == col(Customer.id))
            .where(StripeCustomer.stripe_customer_id == stripe_customer_id)
        )
        return result.scalars().first()

    async def customers_without_stripe(self, *, limit: int, now: datetime) -> Sequence[uuid.UUID]:
        """Customers without a Stripe customer, but not those Stripe refused whose backoff
        lasts past now."""
        result = await self.session.execute(
            select(Customer.id)
            .outerjoin(StripeCustomer, col(StripeCustomer.customer_id) == col(Customer.id))
            .where(col(StripeCustomer.customer_id).is_(None))
            .where(~_backing_off(CUSTOMER_SYNC, col(Customer.id), now))
            .order_by(col(Customer.created_at), col(Customer.id))
            .limit(limit)
        )
        return result.scalars().all()

    async def add_customer(self, customer_id: uuid.UUID, stripe_customer_id: str) -> str:
        """Record the Stripe customer; the one already recorded wins (two replicas asked Stripe
        with the same Idempotency-Key, so it is the same customer anyway).

        DO NOTHING on any unique conflict, not only customer_id's: two transactions inserting
        the same row at once can meet on the stripe_customer_id index first, and PostgreSQL
        raises a unique violation for a conflict outside the ON CONFLICT target."""
        await self.session.execute(
            insert(StripeCustomer)
            .values(customer_id=customer_id, stripe_customer_id=stripe_customer_id)
            .on_conflict_do_nothing()
        )
        stored = await self.stripe_customer_of(customer_id)
        if stored is None:
            raise LookupError(
                f"Stripe customer {stripe_customer_id} is recorded for another customer"
            )
        return stored

    async def newest_checkout_of(
        self, stripe_customer_id: str, *, for_update: bool = False
    ) -> CheckoutOrder | None:
        """The Checkout Session whose card was last made the method on file (None: none yet);
        for_update waits for and holds the row against another one being applied."""
        query = select(StripeCustomer).where(
            StripeCustomer.stripe_customer_id == stripe_customer_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).scalars().first()
        if row is None or row.checkout_session_id is None or row.checkout_method_created_at is None:
            return None
        return CheckoutOrder(row.checkout_method_created_at, row.checkout_session_id)

    async def record_newest_checkout(self, stripe_customer_id: str, order: CheckoutOrder) -> None:
        """Make the session the customer's newest, unless a newer one is recorded already."""
        newest = await self.newest_checkout_of(stripe_customer_id, for_update=True)
        if newest is not None and order.is_older_than(newest):
            return
        await self.session.execute(
            sa.update(StripeCustomer)
            .where(col(StripeCustomer.stripe_customer_id) == stripe_customer_id)
            .values(
                checkout_session_id=order.session_id,
                checkout_method_created_at=order.method_created_at,
            )
        )

    async def product_of(self, plan_key: str) -> str | None:
        row = await self.session.get(StripeProduct, plan_key)
        return row.stripe_product_id if row else None

    async def add_product(self, plan_key: str, stripe_product_id: str) -> None:
        await self.session.execute(
            insert(StripeProduct)
            .values(plan_key=plan_key, stripe_product_id=stripe_product_id)
            .on_conflict_do_nothing()  # any unique conflict: see add_customer
        )

    async def has_plan(self, stripe_plan_id: str) -> bool:
        return await self.session.get(StripePlan, stripe_plan_id) is not None

    async def add_plan(self, plan: StripePlan) -> None:
        await self.session.execute(
            insert(StripePlan)
            .values(plan.model_dump())
            .on_conflict_do_nothing()  # any unique conflict: see add_customer
        )

    async def stripe_invoice_of(self, invoice_id: uuid.UUID) -> str | None:
        row = await self.session.get(StripeInvoice, invoice_id)
        return row.stripe_invoice_id if row else None

    async def invoice_of_stripe(self, stripe_invoice_id: str) -> uuid.UUID | None:
        result = await self.session.execute(
            select(StripeInvoice.invoice_id).where(
                StripeInvoice.stripe_invoice_id == stripe_invoice_id
            )
        )
        return result.scalars().first()

    async def add_invoice(self, invoice_id: uuid.UUID, stripe_invoice_id: str) -> None:
        await self.session.execute(
            insert(StripeInvoice)
            .values(invoice_id=invoice_id, stripe_invoice_id=stripe_invoice_id)
            .on_conflict_do_nothing()  # any unique conflict: see add_customer
        )

    async def invoices_to_close(
        self, *, limit: int, now: datetime
    ) -> Sequence[tuple[uuid.UUID, str, str]]:
        """(invoice id, Stripe invoice id, our state) of pushed invoices void or uncollectible
        here whose state Stripe was not yet made to follow, but not those Stripe refused whose
        backoff lasts past now."""
        closed = (InvoiceState.VOID.value, InvoiceState.UNCOLLECTIBLE.value)
        result = await self.session.execute(
            select(
                col(StripeInvoice.invoice_id),
                col(StripeInvoice.stripe_invoice_id),
                col(Invoice.state),
            )
            .join(Invoice, col(Invoice.id) == col(StripeInvoice.invoice_id))
            .where(col(Invoice.state).in_(closed))
            .where(col(StripeInvoice.sent_state).is_distinct_from(col(Invoice.state)))
            .where(~_backing_off(INVOICE_SYNC, col(StripeInvoice.invoice_id), now))
            .order_by(col(StripeInvoice.created_at), col(StripeInvoice.invoice_id))
            .limit(limit)
        )
        return [(row[0], row[1], row[2]) for row in result.all()]

    async def record_sent(self, invoice_id: uuid.UUID, state: str, *, now: datetime) -> None:
        await self.session.execute(
            sa.update(StripeInvoice)
            .where(col(StripeInvoice.invoice_id) == invoice_id)
            .values(sent_state=state, sent_at=now)
        )

    async def record_refusal(
        self,
        kind: str,
        object_id: uuid.UUID,
        *,
        error: str,
        now: datetime,
        first_delay: timedelta,
        max_delay: timedelta,
    ) -> StripeSyncBackoff | None:
        """Count one more refusal and put the next try first_delay, doubled per refusal, at
        most max_delay ahead. None when the row's backoff had not ended yet: another replica
        tried it in the same round and counted this refusal already."""
        result = await self.session.execute(
            insert(StripeSyncBackoff)
            .values(
                kind=kind,
                object_id=object_id,
                failures=1,
                last_error=error,
                first_failed_at=now,
                last_failed_at=now,
                next_try_at=now + first_delay,
            )
            .on_conflict_do_update(
                index_elements=["kind", "object_id"],
                set_={
                    "failures": col(StripeSyncBackoff.failures) + 1,
                    "last_error": error,
                    "last_failed_at": now,
                },
                where=col(StripeSyncBackoff.next_try_at) <= now,
            )
            .returning(col(StripeSyncBackoff.failures))
        )
        failures = result.scalar_one_or_none()
        if failures is None:
            return None
        delay = min(first_delay * 2 ** min(failures - 1, 32), max_delay)
        await self.session.execute(
            sa.update(StripeSyncBackoff)
            .where(col(StripeSyncBackoff.kind) == kind)
            .where(col(StripeSyncBackoff.object_id) == object_id)
            .values(next_try_at=now + delay)
        )
        return await self.session.get(StripeSyncBackoff, (kind, object_id), populate_existing=True)

    async def clear_backoff(self, kind: str, object_id: uuid.UUID) -> None:
        await self.session.execute(
            sa.delete(StripeSyncBackoff)
            .where(col(StripeSyncBackoff.kind) == kind)
            .where(col(StripeSyncBackoff.object_id) == object_id)
        )

    async def backoff_of(self, kind: str, object_id: uuid.UUID) -> StripeSyncBackoff | None:
        return await self.session.get(StripeSyncBackoff, (kind, object_id))

    async def count_backoffs(self) -> dict[str, int]:
        """Rows in backoff by kind, once those settled since another way are dropped (a
        customer given its Stripe customer by an invoice push, an invoice closed meanwhile)."""
        await self.session.execute(
            sa.delete(StripeSyncBackoff)
            .where(col(StripeSyncBackoff.kind) == CUSTOMER_SYNC)
            .where(
                sa.exists().where(
                    col(StripeCustomer.customer_id) == col(StripeSyncBackoff.object_id)
                )
            )
        )
        closed = (InvoiceState.VOID.value, InvoiceState.UNCOLLECTIBLE.value)
        await self.session.execute(
            sa.delete(StripeSyncBackoff)
            .where(col(StripeSyncBackoff.kind) == INVOICE_SYNC)
            .where(
                ~sa.exists()
                .where(col(StripeInvoice.invoice_id) == col(StripeSyncBackoff.object_id))
                .where(col(Invoice.id) == col(StripeInvoice.invoice_id))
                .where(col(Invoice.state).in_(closed))
                .where(col(StripeInvoice.sent_state).is_distinct_from(col(Invoice.state)))
            )
        )
        result = await self.session.execute(
            select(col(StripeSyncBackoff.kind), sa.func.count()).group_by(
                col(StripeSyncBackoff.kind)
            )
        )
        return {kind: count for kind, count in result.all()}


def _backing_off(kind: str, object_id: Mapped[uuid.UUID], now: datetime) -> sa.Exists:
    """A backoff of the row that lasts past now."""
    return (
        sa.exists()
        .where(col(StripeSyncBackoff.kind) == kind)
        .where(col(StripeSyncBackoff.object_id) == object_id)
        .where(col(StripeSyncBackoff.next_try_at) > now)
    )
