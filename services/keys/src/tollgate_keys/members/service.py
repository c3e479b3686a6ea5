"""Membership rules: invite, accept, change role, remove; an organisation keeps an admin."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_keys.config import KeysSettings
from tollgate_keys.events import KeysEvent, publish
from tollgate_keys.members.models import Invitation, Membership, Role
from tollgate_keys.members.repository import MemberRepository
from tollgate_keys.members.schemas import InvitationPublic, MemberInvited, MemberPublic
from tollgate_keys.users.models import User
from tollgate_keys.users.passwords import verify_password
from tollgate_keys.users.repository import UserRepository
from tollgate_keys.users.service import InvalidCredentialsError, register_user
from tollgate_keys.users.tokens import hash_opaque_token, new_opaque_token
from tollgate_shared.errors import ConflictError, NotFoundError

INVITATION_PREFIX = "tgi_"


class MemberNotFoundError(NotFoundError):
    slug, title = "member-not-found", "Member not found"


class AlreadyMemberError(ConflictError):
    slug, title = "already-member", "Already a member"


class LastAdminError(ConflictError):
    slug, title = "last-admin", "An organisation needs an admin"


class InvitationInvalidError(NotFoundError):
    slug, title = "invitation-invalid", "Invitation not found, used or expired"


def to_public(membership: Membership, user: User) -> MemberPublic:
    return MemberPublic(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=Role(membership.role),
        joined_at=membership.created_at,
    )


def _member_event(membership: Membership, user: User, **extra: object) -> dict[str, object]:
    return {
        "organization_id": str(membership.org_id),
        "user_id": str(user.id),
        "email": user.email,
        "role": membership.role,
        **extra,
    }


async def list_members(session: AsyncSession, *, org_id: uuid.UUID) -> list[MemberPublic]:
    return [to_public(m, u) for m, u in await MemberRepository(session).list(org_id)]


async def add_membership(
    session: AsyncSession, *, org_id: uuid.UUID, user: User, role: Role
) -> Membership:
    repository = MemberRepository(session)
    if await repository.get(org_id=org_id, user_id=user.id) is not None:
        raise AlreadyMemberError(f"{user.email} is already a member of this organisation.")
    membership = await repository.add(Membership(org_id=org_id, user_id=user.id, role=role.value))
    await publish(
        session, KeysEvent.MEMBER_ADDED, org_id=org_id, data=_member_event(membership, user)
    )
    return membership


async def invite_member(
    session: AsyncSession,
    *,
    settings: KeysSettings,
    org_id: uuid.UUID,
    email: str,
    role: Role,
    invited_by: uuid.UUID | None,
) -> MemberInvited:
    """Always an invitation, whether or not the email has an account: joining takes the
    invitee's consent, and the answer must not tell an admin which emails have accounts."""
    email = email.lower()
    repository = MemberRepository(session)
    # Telling that an email belongs to one of the admin's own members reveals nothing new.
    if await repository.get_by_email(org_id=org_id, email=email) is not None:
        raise AlreadyMemberError(f"{email} is already a member of this organisation.")
    token, token_hash = new_opaque_token(INVITATION_PREFIX)
    invitation = await repository.add_invitation(
        Invitation(
            org_id=org_id,
            email=email,
            role=role.value,
            token_hash=token_hash,
            invited_by=invited_by,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.invitation_ttl_seconds),
        )
    )
    await publish(
        session,
        KeysEvent.MEMBER_INVITED,
        org_id=org_id,
        data={
            "organization_id": str(org_id),
            "invitation_id": str(invitation.id),
            "email": invitation.email,
            "role": invitation.role,
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    return MemberInvited(
        invitation=InvitationPublic.model_validate(invitation, from_attributes=True),
        invitation_token=token,
    )


async def accept_invitation(
    session: AsyncSession,
    *,
    settings: KeysSettings,
    token: str,
    password: str,
    full_name: str | None,
) -> tuple[User, uuid.UUID]:
    """New users set their password; existing users confirm theirs. Returns (user, org id)."""
    repository = MemberRepository(session)
    invitation = await repository.invitation_by_token_hash(hash_opaque_token(token))
    now = datetime.now(UTC)
    if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= now:
        raise InvitationInvalidError()
    user = await UserRepository(session).get_by_email(invitation.email)
    if user is None:
        user = await register_user(
            session,
            settings=settings,
            email=invitation.email,
            password=password,
            full_name=full_name,
            org_id=invitation.org_id,
        )
    elif not await verify_password(password, user.password_hash, hashing=settings.password_hashing):
        raise InvalidCredentialsError("This email has an account: use its password to accept.")
    await add_membership(session, org_id=invitation.org_id, user=user, role=Role(invitation.role))
    invitation.accepted_at = now
    session.add(invitation)
    return user, invitation.org_id


async def _get(
    repository: MemberRepository, *, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User]:
    found = await repository.get(org_id=org_id, user_id=user_id, for_update=True)
    if found is None:
        raise MemberNotFoundError(f"No member {user_id} in this organisation.")
    return found


async def change_role(
    session: AsyncSession, *, org_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> MemberPublic:
    repository = MemberRepository(session)
    # The admins' rows are locked before the member's own row: locking the member first let
    # two admins demoting each other at once deadlock (and answer 500).
    admins = await repository.lock_admins(org_id)
    membership, user = await _get(repository, org_id=org_id, user_id=user_id)
    if membership.role == role.value:
        return to_public(membership, user)
    if membership.role == Role.ORG_ADMIN.value and admins <= 1:
        raise LastAdminError("Make someone else org_admin before changing this role.")
    previous = membership.role
    membership.role = role.value
    session.add(membership)
    await session.flush()
    await publish(
        session,
        KeysEvent.MEMBER_ROLE_CHANGED,
        org_id=org_id,
        data=_member_event(membership, user, previous_role=previous),
    )
    return to_public(membership, user)


async def remove_member(session: AsyncSession, *, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    repository = MemberRepository(session)
    admins = await repository.lock_admins(org_id)  # before the member's row, as in change_role
    membership, user = await _get(repository, org_id=org_id, user_id=user_id)
    if membership.role == Role.ORG_ADMIN.value and admins <= 1:
        raise LastAdminError("The last org_admin cannot be removed.")
    event = _member_event(membership, user)
    await repository.delete(membership)
    await publish(session, KeysEvent.MEMBER_REMOVED, org_id=org_id, data=event)
