import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from tollgate_metering.auth import OrgReader, PlatformAdmin
from tollgate_metering.entitlements import service
from tollgate_metering.entitlements.catalog import PlanCatalog
from tollgate_metering.entitlements.schemas import (
    EntitlementList,
    EntitlementStates,
    EntitlementView,
    OverrideChange,
)
from tollgate_metering.meters.schemas import METER_KEY_PATTERN
from tollgate_shared.database import SessionDep
from tollgate_shared.identity import ServiceIdentity

router = APIRouter(tags=["entitlements"])


def _catalog(request: Request) -> PlanCatalog:
    catalog: PlanCatalog = request.app.state.plan_catalog
    return catalog


Catalog = Annotated[PlanCatalog, Depends(_catalog)]
MeterKeyPath = Annotated[str, Path(pattern=METER_KEY_PATTERN)]


@router.get("/v1/entitlements", response_model=EntitlementList)
async def list_entitlements(
    identity: OrgReader, session: SessionDep, catalog: Catalog
) -> EntitlementList:
    """Your organisation's quotas this billing period (calendar month, UTC): limit, used,
    remaining, status and when they reset."""
    assert identity.org_id is not None
    return await service.list_entitlements(session, org_id=identity.org_id, catalog=catalog)


@router.get("/v1/admin/entitlements/{org_id}", response_model=EntitlementList)
async def list_org_entitlements(
    org_id: uuid.UUID, _: PlatformAdmin, session: SessionDep, catalog: Catalog
) -> EntitlementList:
    """An organisation's quotas, for the platform operator."""
    return await service.list_entitlements(session, org_id=org_id, catalog=catalog)


@router.put("/v1/admin/entitlements/{org_id}/{meter}", response_model=EntitlementView)
async def set_override(
    org_id: uuid.UUID,
    meter: MeterKeyPath,
    body: OverrideChange,
    _: PlatformAdmin,
    session: SessionDep,
    catalog: Catalog,
) -> EntitlementView:
    """Give one organisation its own terms for a meter instead of its plan's (a null limit
    lifts the quota). The gateway applies them within seconds."""
    await service.set_override(session, org_id=org_id, meter_key=meter, change=body)
    listed = await service.list_entitlements(session, org_id=org_id, catalog=catalog)
    return next(view for view in listed.data if view.meter == meter)


@router.delete("/v1/admin/entitlements/{org_id}/{meter}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_override(
    org_id: uuid.UUID, meter: MeterKeyPath, _: PlatformAdmin, session: SessionDep
) -> None:
    """Back to the plan's terms."""
    await service.remove_override(session, org_id=org_id, meter_key=meter)


@router.get("/internal/v1/entitlements", response_model=EntitlementStates, tags=["internal"])
async def flagged_entitlements(_: ServiceIdentity, session: SessionDep) -> EntitlementStates:
    """Every entitlement of the current period in grace or exceeded: the gateway loads them at
    start and after a NATS reconnect, then follows tollgate.metering.entitlement.* events."""
    return await service.flagged_states(session)
