from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from tollgate_billing.auth import CatalogAdmin, OrgReader
from tollgate_billing.catalog import service
from tollgate_billing.catalog.models import Plan
from tollgate_billing.catalog.schemas import PlanAdminView, PlanCreate, PlanPublic, PlanUpdate
from tollgate_billing.config import BillingSettings
from tollgate_billing.decimal_json import DecimalJSONRoute
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/billing/plans", tags=["plans"])
admin_router = APIRouter(
    prefix="/v1/billing/admin/plans", tags=["plans (admin)"], route_class=DecimalJSONRoute
)


def _settings(request: Request) -> BillingSettings:
    settings: BillingSettings = request.app.state.settings
    return settings


async def _plan_to_change(key: str, identity: CatalogAdmin, session: SessionDep) -> Plan:
    """A plan of the catalog (archived included), locked until the request commits."""
    return await service.get_plan(session, key=key, include_archived=True, for_update=True)


PlanToChange = Annotated[Plan, Depends(_plan_to_change)]
Settings = Annotated[BillingSettings, Depends(_settings)]


@router.get("", response_model=list[PlanPublic])
async def list_plans(identity: OrgReader, session: SessionDep) -> list[PlanPublic]:
    """The plans on sale (archived ones are not), cheapest first."""
    plans = await service.list_plans(session, include_archived=False)
    return [service.to_public(plan) for plan in plans]


@router.get("/{key}", response_model=PlanPublic)
async def get_plan(key: str, identity: OrgReader, session: SessionDep) -> PlanPublic:
    plan = await service.get_plan(session, key=key, include_archived=False)
    return service.to_public(plan)


@admin_router.get("", response_model=list[PlanAdminView])
async def admin_list_plans(
    identity: CatalogAdmin,
    session: SessionDep,
    include_archived: Annotated[bool, Query()] = False,
) -> list[PlanAdminView]:
    """Every plan with its number of customers, cheapest first."""
    return await service.list_admin_views(session, include_archived=include_archived)


@admin_router.post("", status_code=status.HTTP_201_CREATED, response_model=PlanAdminView)
async def create_plan(
    body: PlanCreate, identity: CatalogAdmin, session: SessionDep
) -> PlanAdminView:
    return await service.create_plan(session, data=body)


@admin_router.get("/{key}", response_model=PlanAdminView)
async def admin_get_plan(key: str, identity: CatalogAdmin, session: SessionDep) -> PlanAdminView:
    plan = await service.get_plan(session, key=key, include_archived=True)
    return await service.admin_view(session, plan=plan)


@admin_router.patch("/{key}", response_model=PlanAdminView)
async def update_plan(body: PlanUpdate, plan: PlanToChange, session: SessionDep) -> PlanAdminView:
    """Change a plan. Prices are fixed once a customer is on it (409 plan-has-customers)."""
    return await service.update_plan(session, plan=plan, changes=body)


@admin_router.delete("/{key}", response_model=PlanAdminView)
async def archive_plan(
    plan: PlanToChange, session: SessionDep, settings: Settings
) -> PlanAdminView:
    """Archive: no new customer may choose the plan; its customers stay on it."""
    return await service.archive_plan(session, plan=plan, default_plan=settings.default_plan)
