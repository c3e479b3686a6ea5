"""Every query on onboarding sessions."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_billing.onboarding.models import OnboardingSession


class OnboardingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_unless_org_has_one(self, onboarding: OnboardingSession) -> bool:
        """Whether it was added. One statement, so two concurrent starts make one session."""
        added = await self.session.scalars(
            insert(OnboardingSession)
            .values(onboarding.model_dump())
            .on_conflict_do_nothing(index_elements=["org_id"])
            .returning(col(OnboardingSession.id))
        )
        return added.first() is not None

    async def of_org(
        self, org_id: uuid.UUID, *, for_update: bool = False
    ) -> OnboardingSession | None:
        query = select(OnboardingSession).where(OnboardingSession.org_id == org_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def save(self, onboarding: OnboardingSession) -> None:
        self.session.add(onboarding)
        await self.session.flush()
