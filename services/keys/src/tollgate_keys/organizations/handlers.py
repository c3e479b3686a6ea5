"""Billing's subscription events set each organisation's plan tier (ADR 0016) and whether it is
suspended for non-payment (ADR 0022)."""

import uuid

from nats.js import JetStreamContext
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_keys.organizations.service import follow_billing_subscription
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import CloudEvent

BILLING_STREAM = "BILLING"
SUBSCRIPTION_EVENTS = "tollgate.billing.subscription.>"
SUSPENDED = "suspended"


class SubscriptionFacts(BaseModel):
    """The part of tollgate.billing.subscription.* the keys service needs."""

    organization_id: uuid.UUID
    rate_limit_tier: str = Field(min_length=1, max_length=50)
    version: int = Field(ge=1)
    # trialing, active, past_due, canceled or suspended; absent from events published before
    # suspension existed, which then leave it as it is. Not a closed list: a status billing adds
    # later must not stop the plan from following.
    status: str | None = Field(default=None, min_length=1, max_length=50)


async def record_subscription(session: AsyncSession, event: CloudEvent) -> None:
    """A malformed event raises: the consumer retries it, then keeps it as a dead letter."""
    facts = SubscriptionFacts.model_validate(event.data)
    await follow_billing_subscription(
        session,
        org_id=facts.organization_id,
        plan=facts.rate_limit_tier,
        suspended=None if facts.status is None else facts.status == SUSPENDED,
        version=facts.version,
    )


def subscriptions_consumer(
    *, js: JetStreamContext, sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> DurableConsumer:
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=BILLING_STREAM,
        durable=name,
        filter_subject=SUBSCRIPTION_EVENTS,
        handler=record_subscription,
    )
