from fastapi import APIRouter

from tollgate_keys.auth import OrgAdmin, OrgMember
from tollgate_keys.organizations import service
from tollgate_keys.organizations.schemas import OrganizationPublic, OrganizationUpdate
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/organization", tags=["organisation"])


@router.get("", response_model=OrganizationPublic)
async def get_organization(identity: OrgMember, session: SessionDep) -> OrganizationPublic:
    """The caller's organisation."""
    assert identity.org_id is not None
    organization = await service.get_organization(session, org_id=identity.org_id)
    return OrganizationPublic.model_validate(organization, from_attributes=True)


@router.patch("", response_model=OrganizationPublic)
async def rename_organization(
    body: OrganizationUpdate, identity: OrgAdmin, session: SessionDep
) -> OrganizationPublic:
    assert identity.org_id is not None
    organization = await service.get_organization(session, org_id=identity.org_id)
    organization = await service.rename_organization(
        session, organization=organization, name=body.name
    )
    return OrganizationPublic.model_validate(organization, from_attributes=True)
