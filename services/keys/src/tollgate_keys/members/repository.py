import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_keys.members.models import Invitation, Membership, Role
from tollgate_keys.users.models import User


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, org_id: uuid.UUID) -> Sequence[tuple[Membership, User]]:
        result = await self.session.execute(
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.org_id == org_id)
            .order_by(col(Membership.created_at), col(User.email))
        )
        return [(row[0], row[1]) for row in result.all()]

    async def get(
        self, *, org_id: uuid.UUID, user_id: uuid.UUID, for_update: bool = False
    ) -> tuple[Membership, User] | None:
        query = (
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.org_id == org_id, Membership.user_id == user_id)
        )
        if for_update:
            query = query.with_for_update(of=Membership)
        row = (await self.session.execute(query)).first()
        return (row[0], row[1]) if row else None

    async def role_of(self, *, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """The user's current role in the organisation; None when they are not a member."""
        result = await self.session.execute(
            select(Membership.role).where(
                Membership.org_id == org_id, Membership.user_id == user_id
            )
        )
        return result.scalars().first()

    async def get_by_email(self, *, org_id: uuid.UUID, email: str) -> Membership | None:
        result = await self.session.execute(
            select(Membership)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.org_id == org_id, User.email == email.lower())
        )
        return result.scalars().first()

    async def add(self, membership: Membership) -> Membership:
        self.session.add(membership)
        await self.session.flush()
        return membership

    async def delete(self, membership: Membership) -> None:
        await self.session.delete(membership)
        await self.session.flush()

    async def lock_admins(self, org_id: uuid.UUID) -> int:
        """Count org admins, locking their rows (always in the same order) so two demotions
        cannot both pass."""
        result = await self.session.execute(
            select(Membership.user_id)
            .where(Membership.org_id == org_id, Membership.role == Role.ORG_ADMIN.value)
            .order_by(col(Membership.user_id))
            .with_for_update()
        )
        return len(result.all())

    async def add_invitation(self, invitation: Invitation) -> Invitation:
        self.session.add(invitation)
        await self.session.flush()
        return invitation

    async def invitation_by_token_hash(self, token_hash: str) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
        return result.scalars().first()
