from typing import Annotated

from fastapi import APIRouter, Depends, Request

from tollgate_billing.auth import OrgReader
from tollgate_billing.billing_info.schemas import BillingInfo
from tollgate_billing.billing_info.service import billing_info
from tollgate_billing.config import BillingSettings
from tollgate_billing.db_types import utcnow
from tollgate_billing.invoices.endpoints import Metering
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/info", tags=["billing info"])


def _settings(request: Request) -> BillingSettings:
    settings: BillingSettings = request.app.state.settings
    return settings


@router.get("", response_model=BillingInfo)
async def get_billing_info(
    identity: OrgReader,
    session: SessionDep,
    metering: Metering,
    settings: Annotated[BillingSettings, Depends(_settings)],
) -> BillingInfo:
    """The organisation's billing page in one read: plan, subscription status and period,
    payment method, discount, usage this period and the projected invoice."""
    assert identity.org_id is not None
    return await billing_info(
        session,
        org_id=identity.org_id,
        metering=metering,
        now=utcnow(),
        default_plan=settings.default_plan,
    )
