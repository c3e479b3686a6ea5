"""The operator's reports, computed from the aggregates in queries.py."""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.pricing.money import to_minor_units
from tollgate_billing.reports import queries
from tollgate_billing.reports.schemas import (
    AdminCustomer,
    AdminCustomerPage,
    AdminInvoicePage,
    AdminInvoiceSummary,
    CurrencyMrr,
    InvoiceStateReport,
    InvoiceStateTotal,
    MonthRevenue,
    MrrReport,
    PlanMrr,
    RevenueReport,
)
from tollgate_billing.subscriptions.models import Interval, Status
from tollgate_shared.errors import BadRequestError
from tollgate_shared.pagination import PageParams, split_page

# A trial has not paid yet; a past_due customer still owes its fee and is being dunned; a
# suspended or canceled one is not billed a fee any more.
MRR_STATUSES = (Status.ACTIVE, Status.PAST_DUE)


def _monthly_fee(monthly: Decimal, yearly: Decimal | None, interval: str) -> Decimal:
    """Exact, in major units: a yearly fee counts as a twelfth (rounded once, per currency)."""
    if interval == Interval.YEAR and yearly is not None:
        return yearly / 12
    return monthly


async def mrr(session: AsyncSession, *, now: datetime) -> MrrReport:
    """Monthly recurring revenue from each subscription's plan fee at today's catalog prices;
    metered usage is not recurring and is left out (it is in the revenue report)."""
    by_plan: list[PlanMrr] = []
    exact: dict[str, Decimal] = defaultdict(Decimal)
    paying: dict[str, int] = defaultdict(int)
    for row in await queries.subscriptions_by_plan(session):
        counted = row.status in MRR_STATUSES
        fee = _monthly_fee(row.monthly_price, row.yearly_price, row.interval) * row.subscriptions
        if counted:
            exact[row.currency] += fee
            paying[row.currency] += row.subscriptions if fee > 0 else 0
        by_plan.append(
            PlanMrr(
                plan=row.plan_key,
                interval=row.interval,
                status=row.status,
                subscriptions=row.subscriptions,
                mrr=to_minor_units(fee, row.currency) if counted else 0,
            )
        )
    return MrrReport(
        as_of=now,
        counted_statuses=[status.value for status in MRR_STATUSES],
        currencies=[
            CurrencyMrr(
                currency=currency,
                mrr=to_minor_units(amount, currency),
                paying_subscriptions=paying[currency],
            )
            for currency, amount in sorted(exact.items())
        ],
        by_plan=by_plan,
    )


def parse_month(value: str, *, name: str) -> date:
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except ValueError as error:
        raise BadRequestError(f"'{name}' must be a month as YYYY-MM, e.g. 2026-11.") from error
    # Room for the month after and the eleven before (the default range) in the calendar.
    if not 1970 <= parsed.year <= 9998:
        raise BadRequestError(f"'{name}' must be a month between 1970-01 and 9998-12.")
    return parsed.date()


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_before(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


async def revenue(session: AsyncSession, *, first: date, last: date) -> RevenueReport:
    """Invoiced and collected per month (UTC) and currency, from `first` to `last` inclusive."""
    if last < first:
        raise BadRequestError("'to' must not be before 'from'.")
    if (last.year - first.year) * 12 + last.month - first.month >= 120:
        raise BadRequestError("A revenue report covers at most 120 months.")
    since = datetime(first.year, first.month, 1, tzinfo=UTC)
    after = _next_month(last)
    until = datetime(after.year, after.month, 1, tzinfo=UTC)
    rows = await queries.revenue_by_month(session, since=since, until=until)
    return RevenueReport(
        months=[
            MonthRevenue(
                month=row.month,
                currency=row.currency,
                invoiced=row.invoiced,
                invoices=row.invoices,
                collected=row.collected,
                paid_invoices=row.paid_invoices,
            )
            for row in rows
        ]
    )


async def invoices_by_state(session: AsyncSession) -> InvoiceStateReport:
    return InvoiceStateReport(
        states=[
            InvoiceStateTotal(
                state=row.state, currency=row.currency, invoices=row.invoices, total=row.total
            )
            for row in await queries.invoices_by_state(session)
        ]
    )


async def invoice_page(
    session: AsyncSession, *, state: str | None, page: PageParams
) -> AdminInvoicePage:
    rows = await queries.issued_invoices(
        session, state=state, limit=page.limit + 1, before=page.cursor
    )
    kept, next_cursor = split_page(rows, page, lambda row: (row.finalized_at, row.id))
    items = [
        AdminInvoiceSummary(
            id=row.id,
            number=row.number,
            organization_id=row.org_id,
            state=row.state,
            currency=row.currency,
            total=row.total,
            period_start=row.period_start,
            period_end=row.period_end,
            finalized_at=row.finalized_at,
        )
        for row in kept
    ]
    return AdminInvoicePage(items=items, next_cursor=next_cursor)


async def customer_page(
    session: AsyncSession, *, plan: str | None, status: str | None, page: PageParams
) -> AdminCustomerPage:
    rows = await queries.customers(
        session, plan=plan, status=status, limit=page.limit + 1, before=page.cursor
    )
    kept, next_cursor = split_page(rows, page, lambda row: (row.created_at, row.id))
    items = [
        AdminCustomer(
            id=row.id,
            organization_id=row.org_id,
            name=row.name,
            plan=row.plan_key,
            interval=row.interval,
            status=row.status,
            current_period_end=row.current_period_end,
            created_at=row.created_at,
        )
        for row in kept
    ]
    return AdminCustomerPage(items=items, next_cursor=next_cursor)
