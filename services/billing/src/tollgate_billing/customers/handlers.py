"""The keys service's organization.created events make each organisation's billing customer."""

import uuid
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_billing.customers.service import create_customer
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import CloudEvent

KEYS_STREAM = "KEYS"
ORGANIZATION_CREATED = "tollgate.keys.organization.created"


class OrganizationCreated(BaseModel):
    """The part of tollgate.keys.organization.created billing needs."""

    organization_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)


def customer_creator(default_plan: str) -> Callable[[AsyncSession, CloudEvent], Awaitable[None]]:
    async def record_organization(session: AsyncSession, event: CloudEvent) -> None:
        """A malformed event raises: the consumer retries it, then keeps it as a dead letter.
        A second event for the same organisation creates nothing."""
        facts = OrganizationCreated.model_validate(event.data)
        await create_customer(
            session,
            org_id=facts.organization_id,
            name=facts.name,
            plan_key=default_plan,
        )

    return record_organization


def organizations_consumer(
    *,
    js: JetStreamContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    default_plan: str,
) -> DurableConsumer:
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=KEYS_STREAM,
        durable=name,
        filter_subject=ORGANIZATION_CREATED,
        handler=customer_creator(default_plan),
    )
