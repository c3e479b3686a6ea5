import uuid

from fastapi import APIRouter, Request, Response, status

from tollgate_keys.auth import Anyone, OrgAdmin, OrgReader, principal_uuid
from tollgate_keys.members import service
from tollgate_keys.members.schemas import (
    InvitationAccept,
    MemberInvite,
    MemberInvited,
    MemberPublic,
    MemberRoleChange,
)
from tollgate_keys.users.schemas import TokenPair
from tollgate_keys.users.service import issue_tokens
from tollgate_shared.database import SessionDep

router = APIRouter(prefix="/v1/members", tags=["members"])
invitations_router = APIRouter(prefix="/v1/invitations", tags=["members"])


@router.get("", response_model=list[MemberPublic])
async def list_members(identity: OrgReader, session: SessionDep) -> list[MemberPublic]:
    """Any member, or an API key with the admin scope (which may also change them)."""
    assert identity.org_id is not None
    return await service.list_members(session, org_id=identity.org_id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemberInvited)
async def invite_member(
    body: MemberInvite, identity: OrgAdmin, session: SessionDep, request: Request
) -> MemberInvited:
    """Invite an email, with or without an account: they join when they accept the invitation
    (POST /v1/invitations/accept). The invitation token is in this response only."""
    assert identity.org_id is not None
    invited_by = principal_uuid(identity) if identity.principal_type == "user" else None
    return await service.invite_member(
        session,
        settings=request.app.state.settings,
        org_id=identity.org_id,
        email=str(body.email),
        role=body.role,
        invited_by=invited_by,
    )


@router.patch("/{user_id}", response_model=MemberPublic)
async def change_role(
    user_id: uuid.UUID, body: MemberRoleChange, identity: OrgAdmin, session: SessionDep
) -> MemberPublic:
    assert identity.org_id is not None
    return await service.change_role(
        session, org_id=identity.org_id, user_id=user_id, role=body.role
    )


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(user_id: uuid.UUID, identity: OrgAdmin, session: SessionDep) -> Response:
    assert identity.org_id is not None
    await service.remove_member(session, org_id=identity.org_id, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@invitations_router.post("/accept", response_model=TokenPair)
async def accept_invitation(
    body: InvitationAccept, _caller: Anyone, session: SessionDep, request: Request
) -> TokenPair:
    """Public: join the inviting organisation and get signed in to it."""
    settings = request.app.state.settings
    user, org_id = await service.accept_invitation(
        session,
        settings=settings,
        token=body.token,
        password=body.password,
        full_name=body.full_name,
    )
    return await issue_tokens(session, settings=settings, user=user, org_id=org_id)
