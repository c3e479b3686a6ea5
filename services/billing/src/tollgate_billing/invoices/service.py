"""The rules of invoices: what a period's invoice holds, finalizing it with a number, paying
and voiding it. Takes a session, never commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.catalog.repository import PlanRepository
from tollgate_billing.catalog.service import metered_charges_of
from tollgate_billing.customers.repository import CustomerRepository
from tollgate_billing.discounts.service import (
    AppliedDiscount,
    discount_for_invoice,
    use_one_period,
)
from tollgate_billing.events import BillingEvent, publish
from tollgate_billing.invoices.metering_usage import MeteringUsageClient, PeriodUsage
from tollgate_billing.invoices.models import Invoice, InvoiceLine, InvoiceLineKind, InvoiceState
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.schemas import (
    BillTo,
    InvoiceLinePublic,
    InvoicePage,
    InvoicePublic,
    InvoiceSummary,
    Reconciliation,
    ReconciliationLine,
    UpcomingInvoice,
)
from tollgate_billing.pricing.charges import charge_for_usage
from tollgate_billing.pricing.money import exact_arithmetic, from_minor_units, to_minor_units
from tollgate_billing.subscriptions.models import Interval, PendingInvoiceItem, Status
from tollgate_billing.subscriptions.proration import fee_of
from tollgate_billing.subscriptions.repository import SubscriptionRepository
from tollgate_billing.subscriptions.service import set_payment_status, status_once_paid
from tollgate_shared.errors import ConflictError, NotFoundError
from tollgate_shared.pagination import PageParams, split_page

logger = structlog.get_logger(__name__)


class InvoiceNotFoundError(NotFoundError):
    slug, title = "invoice-not-found", "Invoice not found"


class InvoiceStateError(ConflictError):
    slug, title = "invoice-state", "Not possible in the invoice's state"


class CurrencyMismatchError(RuntimeError):
    """A pending item in another currency than the period's plan: left for an operator."""


@dataclass(frozen=True)
class ComputedInvoice:
    lines: list[InvoiceLine]
    items: list[PendingInvoiceItem]
    usage: PeriodUsage
    discount: AppliedDiscount | None = None

    @property
    def subtotal(self) -> int:
        """Before tax."""
        return sum(line.amount for line in self.lines if line.kind != InvoiceLineKind.TAX)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def tax_of(subtotal: int, *, rate: Decimal, currency: str) -> int:
    """rate percent of the subtotal, exact, rounded once to minor units half to even (ADR
    0015). A subtotal at or below zero (credits) bears no tax: 0, never a negative tax."""
    if subtotal <= 0:
        return 0
    with exact_arithmetic():
        exact = from_minor_units(subtotal, currency) * rate / 100
    return to_minor_units(exact, currency)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)


async def compute_invoice(
    session: AsyncSession,
    *,
    invoice: Invoice,
    usage_until: datetime,
    metering: MeteringUsageClient,
    lock_items: bool,
) -> ComputedInvoice:
    """The lines of the invoice of [invoice.period_start, usage_until): the base fee of the
    plan the period started on, the pending proration items of this period (and any earlier
    one left), one line per metered charge of that plan with metering's exact quantity."""
    plan = await PlanRepository(session).get(invoice.plan_key)
    assert plan is not None  # a foreign key; plans are never deleted
    lines: list[InvoiceLine] = []

    def add(kind: InvoiceLineKind, description: str, amount: int, **fields: Any) -> None:
        lines.append(
            InvoiceLine(
                invoice_id=invoice.id,
                position=len(lines),
                kind=kind.value,
                description=description,
                amount=amount,
                **fields,
            )
        )

    if invoice.base_fee_due:
        fee = fee_of(plan, Interval(invoice.interval)) or 0
        add(InvoiceLineKind.BASE_FEE, f"{plan.name} ({invoice.interval}ly)", fee)
    items = list(
        await InvoiceRepository(session).pending_items_up_to(
            invoice.subscription_id, invoice.period_start, for_update=lock_items
        )
    )
    for item in items:
        if item.currency != invoice.currency:
            raise CurrencyMismatchError(
                f"pending item {item.id} is in {item.currency}, the invoice in {invoice.currency}"
            )
        add(InvoiceLineKind.PRORATION, item.description, item.amount, pending_item_id=item.id)
    usage = await metering.period_usage(
        org_id=invoice.org_id,
        period_start=invoice.period_start,
        period_end=usage_until,
        running=invoice.ended_at is None,
    )
    for meter, charge_terms in sorted(metered_charges_of(plan).items()):
        quantity = usage.of(meter)
        charge = charge_for_usage(
            quantity=quantity,
            included=charge_terms.included_quantity,
            scheme=charge_terms.pricing,
            currency=invoice.currency,
        )
        add(
            InvoiceLineKind.METERED,
            f"{meter}: {_plain(quantity)} ({_plain(charge.included)} included)",
            charge.amount,
            meter=meter,
            quantity=quantity,
            included=charge.included,
            billable=charge.billable,
            unit_price=charge.lines[0].unit_price if len(charge.lines) == 1 else None,
            price_detail=[
                {
                    "quantity": str(line.quantity),
                    "unit_price": str(line.unit_price),
                    "flat_fee": str(line.flat_fee),
                    "exact_amount": str(line.exact_amount),
                    "amount": line.amount,
                    "tier": line.tier,
                }
                for line in charge.lines
            ],
        )
    discount = await discount_for_invoice(
        session,
        customer_id=invoice.customer_id,
        plan_key=invoice.plan_key,
        subtotal=sum(line.amount for line in lines),
        currency=invoice.currency,
        lock=lock_items,
    )
    if discount is not None:
        add(InvoiceLineKind.DISCOUNT, discount.description, discount.amount)
    customer = await CustomerRepository(session).get(invoice.customer_id)
    if customer is not None and customer.tax_rate is not None:
        subtotal = sum(line.amount for line in lines)
        add(
            InvoiceLineKind.TAX,
            f"Tax {_plain(customer.tax_rate)} %",
            tax_of(subtotal, rate=customer.tax_rate, currency=invoice.currency),
        )
    return ComputedInvoice(lines=lines, items=items, usage=usage, discount=discount)


async def finalize(
    session: AsyncSession, *, invoice: Invoice, metering: MeteringUsageClient, now: datetime
) -> Invoice:
    """Bill the ended period (the draft locked by the caller): lines, totals, the pending items
    marked invoiced, the next number, state open, event invoice.finalized. $0 invoices too."""
    if invoice.state != InvoiceState.DRAFT or invoice.ended_at is None:
        raise InvoiceStateError("Only the draft of an ended period can be finalized.")
    computed = await compute_invoice(
        session, invoice=invoice, usage_until=invoice.ended_at, metering=metering, lock_items=True
    )
    repository = InvoiceRepository(session)
    await repository.add_lines(computed.lines)
    for item in computed.items:
        item.invoiced_at, item.invoice_id = now, invoice.id
        session.add(item)
    if computed.discount is not None:
        use_one_period(session, computed.discount, now=now)
    # Last, so the number's lock is held for as short a time as this transaction allows.
    invoice.number = await repository.take_number()
    invoice.subtotal, invoice.total = computed.subtotal, computed.total
    invoice.usage_from, invoice.usage_to = computed.usage.usage_from, computed.usage.usage_to
    invoice.state, invoice.finalized_at = InvoiceState.OPEN.value, now
    # Owed: the collection job tries it from now on (ADR 0020).
    invoice.next_payment_attempt_at = now if invoice.total > 0 else None
    await repository.save(invoice)
    await _publish(session, invoice, BillingEvent.INVOICE_FINALIZED)
    if invoice.total <= 0:  # nothing to collect: paid at once, no payment attempt
        await mark_paid(session, invoice_id=invoice.id, now=now)
    logger.info(
        "invoice finalized", invoice_id=str(invoice.id), number=invoice.number, total=invoice.total
    )
    return invoice


async def get_invoice(
    session: AsyncSession, *, org_id: uuid.UUID, invoice_id: uuid.UUID
) -> Invoice:
    """An issued invoice of the organisation; drafts and other organisations' are not found."""
    invoice = await InvoiceRepository(session).of_org(org_id, invoice_id)
    if invoice is None:
        raise InvoiceNotFoundError("No such invoice in this organisation.")
    return invoice


def event_data(invoice: Invoice) -> dict[str, object]:
    """The facts of tollgate.billing.invoice.* (docs/events.md)."""
    return {
        "invoice_id": str(invoice.id),
        "number": invoice.number,
        "organization_id": str(invoice.org_id),
        "customer_id": str(invoice.customer_id),
        "subscription_id": str(invoice.subscription_id),
        "state": invoice.state,
        "currency": invoice.currency,
        "total": invoice.total,
        "period_start": invoice.period_start.isoformat(),
        "period_end": (invoice.ended_at or invoice.period_end).isoformat(),
    }


async def _publish(session: AsyncSession, invoice: Invoice, event: BillingEvent) -> None:
    await publish(
        session,
        event,
        org_id=invoice.org_id,
        subject=f"invoices/{invoice.id}",
        data=event_data(invoice),
    )


def line_view(line: InvoiceLine) -> InvoiceLinePublic:
    return InvoiceLinePublic.model_validate(line, from_attributes=True)


def invoice_view(invoice: Invoice, lines: Sequence[InvoiceLine]) -> InvoicePublic:
    assert invoice.number is not None  # issued
    return InvoicePublic(
        id=invoice.id,
        number=invoice.number,
        state=invoice.state,
        currency=invoice.currency,
        plan=invoice.plan_key,
        interval=invoice.interval,
        period_start=invoice.period_start,
        period_end=invoice.ended_at or invoice.period_end,
        usage_from=invoice.usage_from,
        usage_to=invoice.usage_to,
        subtotal=invoice.subtotal,
        total=invoice.total,
        lines=[line_view(line) for line in lines],
        finalized_at=invoice.finalized_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        payment_attempts=invoice.payment_attempt_count,
        next_payment_attempt_at=(
            invoice.next_payment_attempt_at if invoice.state == InvoiceState.OPEN else None
        ),
    )


async def read_invoice(
    session: AsyncSession, *, org_id: uuid.UUID, invoice_id: uuid.UUID
) -> InvoicePublic:
    invoice = await get_invoice(session, org_id=org_id, invoice_id=invoice_id)
    return invoice_view(invoice, await InvoiceRepository(session).lines_of(invoice.id))


async def read_invoice_and_bill_to(
    session: AsyncSession, *, org_id: uuid.UUID, invoice_id: uuid.UUID
) -> tuple[InvoicePublic, BillTo]:
    """An issued invoice of the organisation and its customer, for the PDF."""
    invoice = await get_invoice(session, org_id=org_id, invoice_id=invoice_id)
    customer = await CustomerRepository(session).get(invoice.customer_id)
    assert customer is not None  # a foreign key; customers are never deleted
    view = invoice_view(invoice, await InvoiceRepository(session).lines_of(invoice.id))
    return view, BillTo(name=customer.name, organization_id=customer.org_id)


async def list_invoices(
    session: AsyncSession, *, org_id: uuid.UUID, page: PageParams
) -> InvoicePage:
    """Issued invoices, newest period first."""
    rows = await InvoiceRepository(session).page_of_org(
        org_id,
        limit=page.limit + 1,
        before=(page.cursor.created_at, page.cursor.id) if page.cursor else None,
    )
    invoices, next_cursor = split_page(rows, page, lambda row: (row.period_start, row.id))
    items = [
        InvoiceSummary(
            id=invoice.id,
            number=invoice.number or "",
            state=invoice.state,
            currency=invoice.currency,
            period_start=invoice.period_start,
            period_end=invoice.ended_at or invoice.period_end,
            total=invoice.total,
            finalized_at=invoice.finalized_at,
        )
        for invoice in invoices
    ]
    return InvoicePage(items=items, next_cursor=next_cursor)


async def upcoming_invoice(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    metering: MeteringUsageClient,
    now: datetime,
) -> UpcomingInvoice:
    """The current period's invoice so far (usage until now), computed, not stored."""
    repository = InvoiceRepository(session)
    draft = await repository.running_draft_of_org(org_id)
    if draft is None:
        raise InvoiceNotFoundError("This organisation has no running billing period.")
    computed = await compute_invoice(
        session, invoice=draft, usage_until=now, metering=metering, lock_items=False
    )
    return UpcomingInvoice(
        currency=draft.currency,
        plan=draft.plan_key,
        interval=draft.interval,
        period_start=draft.period_start,
        period_end=draft.period_end,
        usage_from=computed.usage.usage_from,
        usage_to=computed.usage.usage_to,
        subtotal=computed.subtotal,
        total=computed.total,
        lines=[line_view(line) for line in computed.lines],
        usage=computed.usage.quantities,
    )


async def _locked_issued(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await InvoiceRepository(session).issued(invoice_id, for_update=True)
    if invoice is None:
        raise InvoiceNotFoundError("No such invoice.")
    return invoice


async def mark_paid(session: AsyncSession, *, invoice_id: uuid.UUID, now: datetime) -> Invoice:
    """Record that the invoice was paid: the operator's call in ledger mode, or a payment's
    outcome (payments.outcomes). Paying a paid invoice again changes nothing; a void one
    cannot be paid. Its collection ends."""
    invoice = await _locked_issued(session, invoice_id)
    if invoice.state == InvoiceState.PAID:
        return invoice
    if invoice.state not in (InvoiceState.OPEN, InvoiceState.UNCOLLECTIBLE):
        raise InvoiceStateError(f"A {invoice.state} invoice cannot be paid.", state=invoice.state)
    invoice.state, invoice.paid_at = InvoiceState.PAID.value, now
    invoice.next_payment_attempt_at = None
    await InvoiceRepository(session).save(invoice)
    await _publish(session, invoice, BillingEvent.INVOICE_PAID)
    await _end_dunning(session, invoice, now=now)
    return invoice


async def _end_dunning(session: AsyncSession, invoice: Invoice, *, now: datetime) -> None:
    """A past_due or suspended subscription is active again once no failed invoice of it is
    left open (ADR 0020)."""
    subscription = await SubscriptionRepository(session).of_org(invoice.org_id, for_update=True)
    if (
        subscription is not None
        and subscription.status in (Status.PAST_DUE, Status.SUSPENDED)
        and not await InvoiceRepository(session).has_failed_open(subscription.id)
    ):
        await set_payment_status(
            session,
            subscription=subscription,
            status=status_once_paid(subscription, now=now),
            now=now,
        )


async def void_invoice(session: AsyncSession, *, invoice_id: uuid.UUID, now: datetime) -> Invoice:
    """Cancel an unpaid invoice; its number stays used (never reused), its collection ends.
    Voiding again changes nothing; a paid invoice cannot be voided."""
    invoice = await _locked_issued(session, invoice_id)
    if invoice.state == InvoiceState.VOID:
        return invoice
    if invoice.state not in (InvoiceState.OPEN, InvoiceState.UNCOLLECTIBLE):
        raise InvoiceStateError(f"A {invoice.state} invoice cannot be voided.", state=invoice.state)
    invoice.state, invoice.voided_at = InvoiceState.VOID.value, now
    invoice.next_payment_attempt_at = None
    await InvoiceRepository(session).save(invoice)
    await _publish(session, invoice, BillingEvent.INVOICE_VOIDED)
    await _end_dunning(session, invoice, now=now)  # the debt is forgiven
    return invoice


async def reconcile(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    period_start: datetime,
    metering: MeteringUsageClient,
) -> Reconciliation:
    """Each metered line of the organisation's invoice for the period next to metering's
    figure for the same minutes now: a difference means usage arrived after the close (beyond
    the grace window) or a bug."""
    invoice = await InvoiceRepository(session).issued_for_period(org_id, period_start)
    if invoice is None or invoice.usage_from is None or invoice.usage_to is None:
        raise InvoiceNotFoundError("No invoice of this organisation starts at that moment.")
    usage = await metering.period_usage(
        org_id=org_id, period_start=invoice.usage_from, period_end=invoice.usage_to
    )
    lines = [
        ReconciliationLine(
            meter=line.meter,
            invoiced_quantity=line.quantity,
            metered_quantity=usage.of(line.meter),
            matches=line.quantity == usage.of(line.meter),
        )
        for line in await InvoiceRepository(session).lines_of(invoice.id)
        if line.kind == InvoiceLineKind.METERED
        and line.meter is not None
        and line.quantity is not None
    ]
    assert invoice.number is not None
    return Reconciliation(
        invoice_id=invoice.id,
        number=invoice.number,
        organization_id=org_id,
        period_start=invoice.period_start,
        usage_from=invoice.usage_from,
        usage_to=invoice.usage_to,
        lines=lines,
        matches=all(line.matches for line in lines),
    )
