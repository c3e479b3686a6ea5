import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from tollgate_billing.auth import BillingAdmin, CatalogAdmin, OrgReader
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.models import InvoiceState
from tollgate_billing.invoices.schemas import InvoicePublic
from tollgate_billing.payments import service
from tollgate_billing.payments.collection import collect_due
from tollgate_billing.payments.collector import PaymentCollector
from tollgate_billing.payments.models import AttemptOutcome
from tollgate_billing.payments.schemas import (
    CollectionResult,
    LedgerCard,
    PaymentAttemptPage,
    PaymentMethodPublic,
)
from tollgate_shared.database import SessionDep
from tollgate_shared.pagination import PageParams, page_params

router = APIRouter(prefix="/v1/billing", tags=["payments"])
admin_router = APIRouter(prefix="/v1/billing/admin", tags=["payments (operator)"])


def _collector(request: Request) -> PaymentCollector:
    collector: PaymentCollector = request.app.state.payment_collector
    return collector


Collector = Annotated[PaymentCollector, Depends(_collector)]


@router.put("/payment-method", response_model=PaymentMethodPublic)
async def put_payment_method(
    card: LedgerCard, identity: BillingAdmin, session: SessionDep, collector: Collector
) -> PaymentMethodPublic:
    """Ledger mode (no payment provider): a sandbox test card becomes the organisation's
    payment method, replacing the current one. Only brand, last four digits and expiry are
    kept. With a provider on, cards are entered on its page instead (409)."""
    assert identity.org_id is not None
    return await service.put_ledger_card(
        session, org_id=identity.org_id, card=card, provider=collector.provider, now=utcnow()
    )


@router.get("/payment-method", response_model=PaymentMethodPublic)
async def get_payment_method(identity: OrgReader, session: SessionDep) -> PaymentMethodPublic:
    """The organisation's payment method (404 when none)."""
    assert identity.org_id is not None
    return await service.read_method(session, org_id=identity.org_id)


@router.delete("/payment-method", status_code=status.HTTP_204_NO_CONTENT)
async def delete_payment_method(identity: BillingAdmin, session: SessionDep) -> Response:
    """Forget the organisation's payment method (404 when none): later collections fail with
    no_payment_method until another is set."""
    assert identity.org_id is not None
    await service.delete_method(session, org_id=identity.org_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=InvoicePublic,
    responses={402: {"description": "The payment failed (problem with the reason)"}},
)
async def pay_invoice(
    invoice_id: uuid.UUID, identity: BillingAdmin, request: Request, collector: Collector
) -> InvoicePublic:
    """Pay the open invoice now with the payment method on file; a suspended or past_due
    subscription is active again once no failed invoice is left unpaid. 409 when the invoice
    is not open; 402 when the payment fails."""
    assert identity.org_id is not None
    return await service.pay_now(
        request.app.state.sessionmaker,
        org_id=identity.org_id,
        invoice_id=invoice_id,
        collector=collector,
        now=utcnow(),
    )


@admin_router.get("/payments", response_model=PaymentAttemptPage)
async def list_payments(
    _: CatalogAdmin,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    outcome: Annotated[AttemptOutcome | None, Query()] = None,
    invoice_state: Annotated[InvoiceState | None, Query()] = None,
) -> PaymentAttemptPage:
    """Payment attempts of every organisation, newest first (cursor pagination), each with
    its invoice's state now; ?outcome=failed lists the failed payments,
    ?outcome=succeeded&invoice_state=void the payments of void invoices (money to give back)."""
    return await service.list_attempts(
        session, outcome=outcome, invoice_state=invoice_state, page=page
    )


@admin_router.post("/payments/collect", response_model=CollectionResult)
async def collect_now(_: CatalogAdmin, request: Request, collector: Collector) -> CollectionResult:
    """Run the collection job now (it also runs in the background): collects the invoices
    whose next attempt is due and applies the dunning action to those past their grace."""
    settings: BillingSettings = request.app.state.settings
    done = await collect_due(
        request.app.state.sessionmaker, collector=collector, default_plan=settings.default_plan
    )
    return CollectionResult(collected=done.collected, dunned=done.dunned)
