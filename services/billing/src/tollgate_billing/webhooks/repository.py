"""Every query on received Stripe events."""

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_billing.webhooks.models import StripeEvent


class StripeEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, event_id: str) -> bool:
        return await self.session.get(StripeEvent, event_id) is not None

    async def claim(self, event_id: str, type_: str, *, now: datetime) -> StripeEvent | None:
        """Store the event, or None when it is stored already. A copy being processed at the
        same moment holds the key's lock: this waits for its commit, then finds it taken."""
        result = await self.session.scalars(
            insert(StripeEvent)
            .values(
                event_id=event_id,
                type=type_,
                outcome="ignored",
                received_at=now,
                processed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(StripeEvent)
        )
        return result.first()

    async def save(self, event: StripeEvent) -> None:
        self.session.add(event)
        await self.session.flush()
