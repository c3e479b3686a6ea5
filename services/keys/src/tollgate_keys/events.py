"""Every event the keys service publishes (documented in docs/events.md)."""

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.events.envelope import new_event
from tollgate_shared.events.outbox import enqueue

SERVICE = "keys"


class KeysEvent(StrEnum):
    ORGANIZATION_CREATED = "tollgate.keys.organization.created"
    ORGANIZATION_UPDATED = "tollgate.keys.organization.updated"
    USER_CREATED = "tollgate.keys.user.created"
    MEMBER_ADDED = "tollgate.keys.member.added"
    MEMBER_INVITED = "tollgate.keys.member.invited"
    MEMBER_ROLE_CHANGED = "tollgate.keys.member.role_changed"
    MEMBER_REMOVED = "tollgate.keys.member.removed"
    KEY_CREATED = "tollgate.keys.key.created"
    KEY_UPDATED = "tollgate.keys.key.updated"
    KEY_REVOKED = "tollgate.keys.key.revoked"
    KEY_ROTATED = "tollgate.keys.key.rotated"
    KEY_EXPIRED = "tollgate.keys.key.expired"


async def publish(
    session: AsyncSession,
    event_type: KeysEvent,
    *,
    org_id: uuid.UUID | None,
    subject: str | None = None,
    data: dict[str, Any],
) -> None:
    """Write the event to the outbox in the caller's transaction."""
    await enqueue(
        session,
        new_event(service=SERVICE, type_=event_type, org_id=org_id, subject=subject, data=data),
    )
