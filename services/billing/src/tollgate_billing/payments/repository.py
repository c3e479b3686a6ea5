"""Every query on payment methods, payment attempts, the dunning policy and the invoices the
collection job works on."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.invoices.models import Invoice, InvoiceState
from tollgate_billing.payments.models import DunningPolicy, PaymentAttempt, PaymentMethod


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_attempt(self, attempt: PaymentAttempt) -> bool:
        """Insert the attempt; False when its (provider, reference) is already recorded, so a
        report delivered twice is applied once."""
        inserted = await self.session.scalars(
            insert(PaymentAttempt)
            .values(attempt.model_dump())
            .on_conflict_do_nothing(
                index_elements=["provider", "reference"],
                index_where=sa.text("reference IS NOT NULL"),
            )
            .returning(col(PaymentAttempt.id))
        )
        return inserted.first() is not None

    async def attempts_of(self, invoice_id: uuid.UUID) -> Sequence[PaymentAttempt]:
        query = (
            select(PaymentAttempt)
            .where(col(PaymentAttempt.invoice_id) == invoice_id)
            .order_by(col(PaymentAttempt.attempt_number))
        )
        return (await self.session.execute(query)).scalars().all()

    async def page_by_outcome(
        self,
        outcome: str | None,
        *,
        invoice_state: str | None = None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> Sequence[tuple[PaymentAttempt, str]]:
        """Attempts of every organisation with their invoice's state, newest first, after the
        cursor's (created_at, id)."""
        query = select(PaymentAttempt, col(Invoice.state)).join(
            Invoice, col(Invoice.id) == col(PaymentAttempt.invoice_id)
        )
        if outcome is not None:
            query = query.where(col(PaymentAttempt.outcome) == outcome)
        if invoice_state is not None:
            query = query.where(col(Invoice.state) == invoice_state)
        if before is not None:
            query = query.where(
                sa.tuple_(col(PaymentAttempt.created_at), col(PaymentAttempt.id))
                < sa.tuple_(*before)
            )
        query = query.order_by(col(PaymentAttempt.created_at).desc(), col(PaymentAttempt.id).desc())
        rows = (await self.session.execute(query.limit(limit))).all()
        return [(row[0], row[1]) for row in rows]

    async def put_method(self, method: PaymentMethod) -> PaymentMethod:
        """The customer's method from now on, replacing any other in one statement (two
        concurrent changes: the last one wins, never two current methods)."""
        values = method.model_dump()
        statement = insert(PaymentMethod).values(values)
        upsert = statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={name: statement.excluded[name] for name in values if name != "customer_id"},
        ).returning(PaymentMethod)
        stored = (await self.session.scalars(upsert)).one()
        return stored

    async def method_of(self, customer_id: uuid.UUID) -> PaymentMethod | None:
        query = select(PaymentMethod).where(col(PaymentMethod.customer_id) == customer_id)
        return (await self.session.execute(query)).scalars().first()

    async def remove_method(self, customer_id: uuid.UUID) -> PaymentMethod | None:
        removed = await self.session.scalars(
            sa.delete(PaymentMethod)
            .where(col(PaymentMethod.customer_id) == customer_id)
            .returning(PaymentMethod)
        )
        return removed.first()

    async def next_due_invoice(
        self, now: datetime, *, skip: Sequence[uuid.UUID] = ()
    ) -> Invoice | None:
        """One open invoice due for collection or dunning, locked; invoices another replica
        holds are skipped, so replicas share the work."""
        query = (
            select(Invoice)
            .where(col(Invoice.state) == InvoiceState.OPEN.value)
            .where(col(Invoice.next_payment_attempt_at) <= now)
            .where(col(Invoice.id).not_in(list(skip)))
            .order_by(col(Invoice.next_payment_attempt_at), col(Invoice.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).scalars().first()


class DunningPolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self) -> DunningPolicy | None:
        return await self.session.get(DunningPolicy, 1)

    async def put(self, policy: DunningPolicy) -> None:
        values = policy.model_dump()
        statement = insert(DunningPolicy).values(values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["id"],
                set_={name: statement.excluded[name] for name in values if name != "id"},
            )
        )
