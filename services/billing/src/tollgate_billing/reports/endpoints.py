from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from tollgate_billing.auth import CatalogAdmin
from tollgate_billing.catalog.schemas import PLAN_KEY_PATTERN
from tollgate_billing.db_types import utcnow
from tollgate_billing.reports import service
from tollgate_billing.reports.schemas import (
    AdminCustomerPage,
    AdminInvoicePage,
    InvoiceStateReport,
    MrrReport,
    RevenueReport,
)
from tollgate_billing.subscriptions.models import Status
from tollgate_shared.database import SessionDep
from tollgate_shared.pagination import PageParams, page_params

admin_router = APIRouter(prefix="/v1/billing/admin", tags=["reports (operator)"])

IssuedState = Literal["open", "paid", "void", "uncollectible"]
Page = Annotated[PageParams, Depends(page_params)]


@admin_router.get("/customers", response_model=AdminCustomerPage)
async def list_customers(
    _: CatalogAdmin,
    session: SessionDep,
    page: Page,
    # A plan key (422 otherwise): a NUL in the filter reached PostgreSQL, a 500.
    plan: Annotated[str | None, Query(pattern=PLAN_KEY_PATTERN)] = None,
    status: Status | None = None,
) -> AdminCustomerPage:
    """Every organisation's billing customer with its plan and subscription status, newest
    first; filter by plan or status (e.g. past_due)."""
    return await service.customer_page(
        session, plan=plan, status=status.value if status else None, page=page
    )


@admin_router.get("/invoices", response_model=AdminInvoicePage)
async def list_invoices(
    _: CatalogAdmin, session: SessionDep, page: Page, state: IssuedState | None = None
) -> AdminInvoicePage:
    """Issued invoices of every organisation, the latest finalized first; filter by state."""
    return await service.invoice_page(session, state=state, page=page)


@admin_router.get("/reports/mrr", response_model=MrrReport)
async def monthly_recurring_revenue(_: CatalogAdmin, session: SessionDep) -> MrrReport:
    """MRR per currency and its make-up by plan, interval and status."""
    return await service.mrr(session, now=utcnow())


@admin_router.get("/reports/revenue", response_model=RevenueReport)
async def revenue_by_month(
    _: CatalogAdmin,
    session: SessionDep,
    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}$")] = None,
    to: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
) -> RevenueReport:
    """Invoiced and collected amounts per month (UTC) and currency; by default the last 12
    months including this one."""
    last = service.parse_month(to, name="to") if to else utcnow().date().replace(day=1)
    first = service.parse_month(from_, name="from") if from_ else service.months_before(last, 11)
    return await service.revenue(session, first=first, last=last)


@admin_router.get("/reports/invoices", response_model=InvoiceStateReport)
async def invoices_by_state(_: CatalogAdmin, session: SessionDep) -> InvoiceStateReport:
    """How many issued invoices are open, paid, void or uncollectible, and their totals."""
    return await service.invoices_by_state(session)
