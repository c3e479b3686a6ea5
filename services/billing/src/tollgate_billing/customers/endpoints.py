import uuid

from fastapi import APIRouter

from tollgate_billing.auth import CatalogAdmin, OrgReader
from tollgate_billing.customers import service
from tollgate_billing.customers.schemas import CustomerPublic, CustomerTax, TaxRateSet
from tollgate_billing.db_types import utcnow
from tollgate_billing.decimal_json import DecimalJSONRoute
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/customer", tags=["customer"])
admin_router = APIRouter(
    prefix="/v1/billing/admin/customers", tags=["customers (admin)"], route_class=DecimalJSONRoute
)


@router.get("", response_model=CustomerPublic)
async def get_customer(identity: OrgReader, session: SessionDep) -> CustomerPublic:
    """The caller's organisation's billing customer and its plan."""
    assert identity.org_id is not None
    return await service.get_customer(session, org_id=identity.org_id)


@admin_router.put("/{org_id}/tax", response_model=CustomerTax)
async def set_tax_rate(
    org_id: uuid.UUID, body: TaxRateSet, identity: CatalogAdmin, session: SessionDep
) -> CustomerTax:
    """The customer's tax rate (percent), or null for none: billed on invoices finalized from
    now on as a line of its own."""
    return await service.set_tax_rate(session, org_id=org_id, rate=body.rate, now=utcnow())
