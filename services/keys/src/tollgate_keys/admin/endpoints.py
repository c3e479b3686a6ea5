"""Platform administration (super_admin only)."""

from typing import Annotated

from fastapi import APIRouter, Depends

from tollgate_keys.auth import SuperAdmin
from tollgate_keys.organizations.schemas import OrganizationPublic
from tollgate_keys.organizations.service import list_organizations
from tollgate_shared.database import SessionDep
from tollgate_shared.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/v1/admin", tags=["platform admin"])


@router.get("/organizations", response_model=Page[OrganizationPublic])
async def all_organizations(
    _admin: SuperAdmin, session: SessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[OrganizationPublic]:
    found = await list_organizations(session, page=page)
    return Page(
        items=[OrganizationPublic.model_validate(o, from_attributes=True) for o in found.items],
        next_cursor=found.next_cursor,
    )
