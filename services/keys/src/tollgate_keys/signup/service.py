"""Self-serve signup: organisation, its first admin, its first API key, in one transaction."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_keys.api_keys import service as api_keys
from tollgate_keys.api_keys.schemas import ApiKeyCreate, ApiKeyCreated
from tollgate_keys.config import KeysSettings
from tollgate_keys.members.models import Role
from tollgate_keys.members.service import add_membership
from tollgate_keys.organizations.schemas import OrganizationPublic
from tollgate_keys.organizations.service import create_organization
from tollgate_keys.signup.schemas import SignupRequest, SignupResult
from tollgate_keys.users.schemas import UserPublic
from tollgate_keys.users.service import issue_tokens, register_user

FIRST_KEY_NAME = "Default key"


async def sign_up(
    session: AsyncSession, *, settings: KeysSettings, request: SignupRequest
) -> SignupResult:
    # The id is chosen first so that user.created already names the organisation.
    organization_id = uuid.uuid4()
    user = await register_user(
        session,
        settings=settings,
        email=str(request.email),
        password=request.password,
        full_name=request.full_name,
        org_id=organization_id,
    )
    organization = await create_organization(
        session, organization_id=organization_id, name=request.organization_name, created_by=user.id
    )
    await add_membership(session, org_id=organization.id, user=user, role=Role.ORG_ADMIN)
    key, secret = await api_keys.create_key(
        session,
        org_id=organization.id,
        created_by=f"user:{user.id}",
        data=ApiKeyCreate(name=FIRST_KEY_NAME, scopes=["read", "write"]),
    )
    tokens = await issue_tokens(session, settings=settings, user=user, org_id=organization.id)
    return SignupResult(
        organization=OrganizationPublic.model_validate(organization, from_attributes=True),
        user=UserPublic.model_validate(user, from_attributes=True),
        api_key=ApiKeyCreated(**api_keys.to_public(key).model_dump(), key=secret),
        tokens=tokens,
    )
