"""Every query on invoices, their lines and the invoice number sequence."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.invoices.models import (
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    InvoiceState,
)
from tollgate_billing.subscriptions.models import PendingInvoiceItem

SEQUENCE = "invoices"


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_ended_draft(
        self, ended_before: datetime, *, skip: Sequence[uuid.UUID] = ()
    ) -> Invoice | None:
        """One draft whose period ended before the moment, locked; drafts another closer holds
        are skipped, so closers share the work and never bill a period twice."""
        query = (
            select(Invoice)
            .where(col(Invoice.state) == InvoiceState.DRAFT.value)
            .where(col(Invoice.ended_at) <= ended_before)
            .where(col(Invoice.id).not_in(list(skip)))
            .order_by(col(Invoice.ended_at), col(Invoice.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).scalars().first()

    async def running_draft(self, subscription_id: uuid.UUID) -> Invoice | None:
        query = (
            select(Invoice)
            .where(col(Invoice.subscription_id) == subscription_id)
            .where(col(Invoice.state) == InvoiceState.DRAFT.value)
            .where(col(Invoice.ended_at).is_(None))
        )
        return (await self.session.execute(query)).scalars().first()

    async def pending_items_up_to(
        self, subscription_id: uuid.UUID, period_start: datetime, *, for_update: bool
    ) -> Sequence[PendingInvoiceItem]:
        """The subscription's pending items of this period or an earlier one (none is left
        behind), oldest first."""
        query = (
            select(PendingInvoiceItem)
            .where(col(PendingInvoiceItem.subscription_id) == subscription_id)
            .where(col(PendingInvoiceItem.invoiced_at).is_(None))
            .where(col(PendingInvoiceItem.period_start) <= period_start)
            .order_by(col(PendingInvoiceItem.created_at), col(PendingInvoiceItem.kind))
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().all()

    async def take_number(self) -> str:
        """The next invoice number: the sequence row is locked until the caller's transaction
        ends, so numbers are gapless, and a rolled back close gives its number back."""
        sequence = (
            await self.session.execute(
                select(InvoiceNumberSequence)
                .where(col(InvoiceNumberSequence.name) == SEQUENCE)
                .with_for_update()
            )
        ).scalar_one()
        sequence.last_number += 1
        await self.session.flush()
        return f"{sequence.prefix}{sequence.last_number:06d}"

    async def add_lines(self, lines: Sequence[InvoiceLine]) -> None:
        self.session.add_all(lines)
        await self.session.flush()

    async def save(self, invoice: Invoice) -> None:
        self.session.add(invoice)
        await self.session.flush()

    async def lines_of(self, invoice_id: uuid.UUID) -> Sequence[InvoiceLine]:
        query = (
            select(InvoiceLine)
            .where(col(InvoiceLine.invoice_id) == invoice_id)
            .order_by(col(InvoiceLine.position))
        )
        return (await self.session.execute(query)).scalars().all()

    async def of_org(self, org_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice | None:
        query = (
            select(Invoice)
            .where(col(Invoice.id) == invoice_id)
            .where(col(Invoice.org_id) == org_id)
            .where(col(Invoice.state) != InvoiceState.DRAFT.value)
        )
        return (await self.session.execute(query)).scalars().first()

    async def issued_of_subscription(self, subscription_id: uuid.UUID) -> Sequence[Invoice]:
        query = (
            select(Invoice)
            .where(col(Invoice.subscription_id) == subscription_id)
            .where(col(Invoice.state) != InvoiceState.DRAFT.value)
            .order_by(col(Invoice.period_start))
        )
        return (await self.session.execute(query)).scalars().all()

    async def running_draft_of_org(self, org_id: uuid.UUID) -> Invoice | None:
        query = (
            select(Invoice)
            .where(col(Invoice.org_id) == org_id)
            .where(col(Invoice.state) == InvoiceState.DRAFT.value)
            .where(col(Invoice.ended_at).is_(None))
        )
        return (await self.session.execute(query)).scalars().first()

    async def issued(self, invoice_id: uuid.UUID, *, for_update: bool) -> Invoice | None:
        query = (
            select(Invoice)
            .where(col(Invoice.id) == invoice_id)
            .where(col(Invoice.state) != InvoiceState.DRAFT.value)
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def has_failed_open(self, subscription_id: uuid.UUID) -> bool:
        """Whether an open invoice of the subscription has a failed payment (in dunning)."""
        query = (
            select(sa.func.count())
            .select_from(Invoice)
            .where(col(Invoice.subscription_id) == subscription_id)
            .where(col(Invoice.state) == InvoiceState.OPEN.value)
            .where(col(Invoice.first_failed_at).is_not(None))
        )
        return bool(await self.session.scalar(query))

    async def issued_for_period(self, org_id: uuid.UUID, period_start: datetime) -> Invoice | None:
        query = (
            select(Invoice)
            .where(col(Invoice.org_id) == org_id)
            .where(col(Invoice.period_start) == period_start)
            .where(col(Invoice.state) != InvoiceState.DRAFT.value)
        )
        return (await self.session.execute(query)).scalars().first()

    async def page_of_org(
        self, org_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[Invoice]:
        """Issued invoices, newest period first, after the cursor's (period_start, id)."""
        query = (
            select(Invoice)
            .where(col(Invoice.org_id) == org_id)
            .where(col(Invoice.state) != InvoiceState.DRAFT.value)
        )
        if before is not None:
            query = query.where(
                sa.tuple_(col(Invoice.period_start), col(Invoice.id)) < sa.tuple_(*before)
            )
        query = query.order_by(col(Invoice.period_start).desc(), col(Invoice.id).desc())
        return (await self.session.execute(query.limit(limit))).scalars().all()
