import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_keys.members.models import Membership
from tollgate_keys.organizations.models import Organization
from tollgate_keys.users.models import RefreshToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email.lower()))
        return result.scalars().first()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def memberships(self, user_id: uuid.UUID) -> Sequence[tuple[Membership, Organization]]:
        result = await self.session.execute(
            select(Membership, Organization)
            .join(Organization, col(Organization.id) == col(Membership.org_id))
            .where(Membership.user_id == user_id)
            .order_by(col(Membership.created_at))
        )
        return [(row[0], row[1]) for row in result.all()]

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
        return result.scalars().first()

    async def revoke_refresh_tokens(self, *, user_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            sa.update(RefreshToken)
            .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=at)
        )
