from typing import Annotated

from fastapi import APIRouter, Query, status

from tollgate_billing.auth import BillingAdmin, CatalogAdmin, OrgReader
from tollgate_billing.db_types import utcnow
from tollgate_billing.decimal_json import DecimalJSONRoute
from tollgate_billing.discounts import service
from tollgate_billing.discounts.schemas import (
    CustomerDiscount,
    DiscountCreate,
    DiscountPublic,
    DiscountRedeem,
)
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/discount", tags=["discount"])
admin_router = APIRouter(
    prefix="/v1/billing/admin/discounts", tags=["discounts (admin)"], route_class=DecimalJSONRoute
)


@router.get("", response_model=CustomerDiscount)
async def get_discount(identity: OrgReader, session: SessionDep) -> CustomerDiscount:
    """The organisation's running discount; 404 when none."""
    assert identity.org_id is not None
    return await service.customer_discount(session, org_id=identity.org_id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CustomerDiscount)
async def redeem_discount(
    body: DiscountRedeem, identity: BillingAdmin, session: SessionDep
) -> CustomerDiscount:
    """Redeem a code: it applies from the next invoice finalized on."""
    assert identity.org_id is not None
    return await service.redeem(session, org_id=identity.org_id, code=body.code, now=utcnow())


@admin_router.post("", status_code=status.HTTP_201_CREATED, response_model=DiscountPublic)
async def create_discount(
    body: DiscountCreate, identity: CatalogAdmin, session: SessionDep
) -> DiscountPublic:
    return await service.create_discount(session, data=body, now=utcnow())


@admin_router.get("", response_model=list[DiscountPublic])
async def list_discounts(
    identity: CatalogAdmin,
    session: SessionDep,
    include_archived: Annotated[bool, Query()] = False,
) -> list[DiscountPublic]:
    return await service.list_discounts(session, include_archived=include_archived)


@admin_router.get("/{code}", response_model=DiscountPublic)
async def admin_get_discount(
    code: str, identity: CatalogAdmin, session: SessionDep
) -> DiscountPublic:
    return await service.get_discount(session, code=code)


@admin_router.delete("/{code}", response_model=DiscountPublic)
async def archive_discount(
    code: str, identity: CatalogAdmin, session: SessionDep
) -> DiscountPublic:
    """Archive: no new redemption; customers who redeemed it keep it."""
    return await service.archive_discount(session, code=code, now=utcnow())
