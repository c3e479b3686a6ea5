"""Every query on meters."""

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tollgate_metering.meters.models import Meter


class MeterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_unless_key_taken(self, meter: Meter) -> Meter | None:
        """Insert the meter; None when the organisation already has (or had) that key. One
        statement, so two concurrent creations of a key cannot both succeed."""
        result = await self.session.scalars(
            insert(Meter).values(meter.model_dump()).on_conflict_do_nothing().returning(Meter)
        )
        return result.first()

    async def get(self, *, org_id: uuid.UUID, key: str) -> Meter | None:
        result = await self.session.execute(
            select(Meter).where(Meter.org_id == org_id, Meter.key == key)
        )
        return result.scalars().first()

    async def list(self, *, org_id: uuid.UUID, include_archived: bool) -> Sequence[Meter]:
        query = select(Meter).where(Meter.org_id == org_id)
        if not include_archived:
            query = query.where(col(Meter.archived_at).is_(None))
        result = await self.session.execute(query.order_by(col(Meter.key)))
        return result.scalars().all()

    async def with_keys(self, *, org_id: uuid.UUID, keys: Collection[str]) -> Sequence[Meter]:
        result = await self.session.execute(
            select(Meter).where(Meter.org_id == org_id, col(Meter.key).in_(list(keys)))
        )
        return result.scalars().all()

    async def save(self, meter: Meter) -> None:
        self.session.add(meter)
        await self.session.flush()
