"""Every event the metering service publishes (documented in docs/events.md)."""

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_metering.config import SERVICE
from tollgate_shared.events.envelope import new_event
from tollgate_shared.events.outbox import enqueue


class MeteringEvent(StrEnum):
    ENTITLEMENT_UPDATED = "tollgate.metering.entitlement.updated"
    ENTITLEMENT_REMOVED = "tollgate.metering.entitlement.removed"
    THRESHOLD_REACHED = "tollgate.metering.usage.threshold_reached"


async def publish(
    session: AsyncSession,
    event_type: MeteringEvent,
    *,
    org_id: uuid.UUID,
    subject: str,
    data: dict[str, Any],
) -> None:
    """Write the event to the outbox in the caller's transaction."""
    await enqueue(
        session,
        new_event(service=SERVICE, type_=event_type, org_id=org_id, subject=subject, data=data),
    )
