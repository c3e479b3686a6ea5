"""The keys service's organization events tell metering each organisation's plan tier.

Billing's plan changes arrive the same way: keys applies tollgate.billing.subscription.* to the
organisation's plan and publishes tollgate.keys.organization.updated (ADR 0016).
"""

import uuid

from nats.js import JetStreamContext
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.entitlements.changes import mark_plan_changed
from tollgate_metering.organizations.repository import OrganizationPlanRepository
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import CloudEvent

KEYS_STREAM = "KEYS"
ORGANIZATION_EVENTS = "tollgate.keys.organization.>"


class OrganizationFacts(BaseModel):
    """The part of tollgate.keys.organization.created/updated metering needs."""

    organization_id: uuid.UUID
    plan: str = Field(min_length=1, max_length=50)


async def record_organization(session: AsyncSession, event: CloudEvent) -> None:
    """A malformed event raises: the consumer retries it, then keeps it as a dead letter."""
    facts = OrganizationFacts.model_validate(event.data)
    stored = await OrganizationPlanRepository(session).record(
        org_id=facts.organization_id, plan=facts.plan, changed_at=event.time
    )
    if stored:  # the plan may have changed: its entitlements are evaluated again
        await mark_plan_changed(session, org_id=facts.organization_id)


def organizations_consumer(
    *, js: JetStreamContext, sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> DurableConsumer:
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=KEYS_STREAM,
        durable=name,
        filter_subject=ORGANIZATION_EVENTS,
        handler=record_organization,
    )
