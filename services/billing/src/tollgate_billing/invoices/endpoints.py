import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime

from tollgate_billing.auth import CatalogAdmin, OrgReader
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices import service
from tollgate_billing.invoices.closer import close_periods
from tollgate_billing.invoices.metering_usage import MeteringUsageClient
from tollgate_billing.invoices.pdf import render_invoice_pdf
from tollgate_billing.invoices.repository import InvoiceRepository
from tollgate_billing.invoices.schemas import (
    InvoicePage,
    InvoicePublic,
    PeriodCloseResult,
    Reconciliation,
    UpcomingInvoice,
)
from tollgate_shared.database import SessionDep
from tollgate_shared.pagination import PageParams, page_params

router = APIRouter(prefix="/v1/billing/invoices", tags=["invoices"])
admin_router = APIRouter(prefix="/v1/billing/admin", tags=["invoices (operator)"])


def _metering(request: Request) -> MeteringUsageClient:
    client: MeteringUsageClient = request.app.state.metering_usage
    return client


Metering = Annotated[MeteringUsageClient, Depends(_metering)]


@router.get("", response_model=InvoicePage)
async def list_invoices(
    identity: OrgReader,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> InvoicePage:
    """The organisation's issued invoices, newest period first (cursor pagination)."""
    assert identity.org_id is not None
    return await service.list_invoices(session, org_id=identity.org_id, page=page)


@router.get("/upcoming", response_model=UpcomingInvoice)
async def upcoming_invoice(
    identity: OrgReader, session: SessionDep, metering: Metering
) -> UpcomingInvoice:
    """The current period's invoice so far: the same lines the period close will write, with
    usage until now. Not stored, not numbered."""
    assert identity.org_id is not None
    return await service.upcoming_invoice(
        session, org_id=identity.org_id, metering=metering, now=utcnow()
    )


@router.get(
    "/{invoice_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The invoice as a PDF"}},
)
async def invoice_pdf(
    invoice_id: uuid.UUID, identity: OrgReader, session: SessionDep, request: Request
) -> Response:
    """The issued invoice as a PDF document: issuer, bill-to, lines and total."""
    assert identity.org_id is not None
    invoice, bill_to = await service.read_invoice_and_bill_to(
        session, org_id=identity.org_id, invoice_id=invoice_id
    )
    settings: BillingSettings = request.app.state.settings
    document = await asyncio.to_thread(  # CPU work off the loop
        render_invoice_pdf, invoice, bill_to=bill_to, issuer=settings.invoice_issuer
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice.number}.pdf"'},
    )


@router.get("/{invoice_id}", response_model=InvoicePublic)
async def get_invoice(
    invoice_id: uuid.UUID, identity: OrgReader, session: SessionDep
) -> InvoicePublic:
    """One issued invoice with its lines; another organisation's is not found."""
    assert identity.org_id is not None
    return await service.read_invoice(session, org_id=identity.org_id, invoice_id=invoice_id)


async def _admin_view(session: SessionDep, invoice_id: uuid.UUID) -> InvoicePublic:
    invoice = await InvoiceRepository(session).issued(invoice_id, for_update=False)
    assert invoice is not None
    return service.invoice_view(invoice, await InvoiceRepository(session).lines_of(invoice.id))


@admin_router.post("/invoices/{invoice_id}/pay", response_model=InvoicePublic)
async def pay_invoice(invoice_id: uuid.UUID, _: CatalogAdmin, session: SessionDep) -> InvoicePublic:
    """Ledger mode (no payment provider): record that the invoice was paid. Again: no-op."""
    await service.mark_paid(session, invoice_id=invoice_id, now=utcnow())
    return await _admin_view(session, invoice_id)


@admin_router.post("/invoices/{invoice_id}/void", response_model=InvoicePublic)
async def void_invoice(
    invoice_id: uuid.UUID, _: CatalogAdmin, session: SessionDep
) -> InvoicePublic:
    """Cancel an unpaid invoice; its number is never reused. Again: no-op."""
    await service.void_invoice(session, invoice_id=invoice_id, now=utcnow())
    return await _admin_view(session, invoice_id)


@admin_router.post("/invoices/close-periods", response_model=PeriodCloseResult)
async def close_ended_periods(
    _: CatalogAdmin, request: Request, metering: Metering
) -> PeriodCloseResult:
    """Run the period close job now (it also runs in the background): invoices every period
    that ended more than the usage grace window ago and has none yet."""
    settings: BillingSettings = request.app.state.settings
    finalized = await close_periods(
        request.app.state.sessionmaker,
        metering=metering,
        grace=timedelta(seconds=settings.usage_grace_seconds),
    )
    return PeriodCloseResult(finalized=finalized)


@admin_router.get("/reconciliation", response_model=Reconciliation)
async def reconciliation(
    _: CatalogAdmin,
    session: SessionDep,
    metering: Metering,
    organization_id: uuid.UUID,
    period_start: Annotated[AwareDatetime, Query()],
) -> Reconciliation:
    """The organisation's invoice of the period beside metering's figures now, meter by meter
    (a mismatch is flagged)."""
    return await service.reconcile(
        session, org_id=organization_id, period_start=period_start, metering=metering
    )
