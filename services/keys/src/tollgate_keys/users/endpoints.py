from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from tollgate_keys.auth import Anyone, principal_uuid
from tollgate_keys.users import service
from tollgate_keys.users.repository import UserRepository
from tollgate_keys.users.schemas import (
    LoginRequest,
    Me,
    MembershipSummary,
    RefreshRequest,
    TokenPair,
    UserPublic,
)
from tollgate_shared.database import SessionDep
from tollgate_shared.errors import UnauthorizedError, problem_response
from tollgate_shared.identity import AnyIdentity

auth_router = APIRouter(prefix="/v1/auth", tags=["sign-in"])
me_router = APIRouter(prefix="/v1/me", tags=["sign-in"])


@auth_router.post("/login", response_model=TokenPair)
async def login(
    body: LoginRequest, _caller: Anyone, session: SessionDep, request: Request
) -> TokenPair:
    """Email and password for an access token (JWT, 15 minutes) and a refresh token."""
    return await service.login(
        session,
        settings=request.app.state.settings,
        email=str(body.email),
        password=body.password,
        org_id=body.organization_id,
    )


@auth_router.post(
    "/refresh",
    response_model=TokenPair,
    responses={401: {"description": "Unknown, expired or already used refresh token"}},
)
async def refresh(
    body: RefreshRequest, _caller: Anyone, session: SessionDep, request: Request
) -> TokenPair | JSONResponse:
    """A new token pair; the refresh token sent is used up."""
    try:
        return await service.refresh(
            session, settings=request.app.state.settings, token=body.refresh_token
        )
    except service.RefreshTokenReusedError as error:
        # Answered, not raised: a raised error rolls the request back, and the revocation of
        # every refresh token of the user must be committed.
        return problem_response(
            request,
            status=error.status,
            type_=error.type,
            title=error.title,
            detail=error.detail,
            headers=error.headers,
        )


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, _caller: Anyone, session: SessionDep) -> Response:
    await service.logout(session, token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.get("", response_model=Me)
async def me(identity: AnyIdentity, session: SessionDep) -> Me:
    """Who the caller is: the signed-in user and their memberships, or the API key."""
    if identity.principal_type == "user":
        repository = UserRepository(session)
        user = await repository.get(principal_uuid(identity))
        if user is None:
            raise UnauthorizedError("This user no longer exists.")
        memberships = await repository.memberships(user.id)
        return Me(
            principal_type="user",
            user=UserPublic.model_validate(user, from_attributes=True),
            organization_id=identity.org_id,
            roles=sorted(identity.roles),
            scopes=sorted(identity.scopes),
            memberships=[
                MembershipSummary(
                    organization_id=organization.id,
                    organization_name=organization.name,
                    role=membership.role,
                )
                for membership, organization in memberships
            ],
        )
    if identity.principal_type != "key" or identity.org_id is None:
        raise UnauthorizedError("Sign in or use an API key.")
    return Me(
        principal_type="key",
        key_id=principal_uuid(identity),
        organization_id=identity.org_id,
        roles=[],
        scopes=sorted(identity.scopes),
    )
