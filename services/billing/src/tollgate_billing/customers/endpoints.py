from fastapi import APIRouter

from tollgate_billing.auth import OrgReader
from tollgate_billing.customers import service
from tollgate_billing.customers.schemas import CustomerPublic
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/customer", tags=["customer"])


@router.get("", response_model=CustomerPublic)
async def get_customer(identity: OrgReader, session: SessionDep) -> CustomerPublic:
    """The caller's organisation's billing customer and its plan."""
    assert identity.org_id is not None
    return await service.get_customer(session, org_id=identity.org_id)
