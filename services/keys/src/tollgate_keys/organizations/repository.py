import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_keys.organizations.models import Organization
from tollgate_shared.pagination import PageParams


class OrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, org_id: uuid.UUID) -> Organization | None:
        return await self.session.get(Organization, org_id)

    async def get_for_update(self, org_id: uuid.UUID) -> Organization | None:
        query = select(Organization).where(col(Organization.id) == org_id).with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def add(self, organization: Organization) -> Organization:
        self.session.add(organization)
        await self.session.flush()
        return organization

    async def list_page(self, page: PageParams) -> Sequence[Organization]:
        query = select(Organization)
        if page.cursor:
            query = query.where(
                sa.tuple_(col(Organization.created_at), col(Organization.id))
                < sa.tuple_(sa.literal(page.cursor.created_at), sa.literal(page.cursor.id))
            )
        query = query.order_by(col(Organization.created_at).desc(), col(Organization.id).desc())
        result = await self.session.execute(query.limit(page.limit + 1))
        return result.scalars().all()
