"""The gateway's usage events (stream USAGE) become events of the built-in api_requests meter."""

import json
import uuid

from nats.js import JetStreamContext
from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.ingestion.repository import UsageEventRepository
from tollgate_metering.ingestion.schemas import NewEvent
from tollgate_metering.meters.built_in import API_REQUESTS
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import USAGE_STREAM

USAGE_RECORDED = "tollgate.gateway.usage.recorded"

USAGE_EVENTS_SKIPPED = Counter(
    "tollgate_metering_gateway_usage_skipped_total",
    "Gateway usage events not metered, by reason",
    ["reason"],
)


class GatewayUsage(BaseModel):
    """The part of the event's data metering needs (docs/events.md has all of it)."""

    timestamp: AwareDatetime  # when the gateway received the request


async def record_gateway_usage(session: AsyncSession, event: CloudEvent) -> None:
    """One request of the organisation, billed to the organisation itself.

    The consumer's inbox already drops a redelivered event; the insert's ON CONFLICT DO NOTHING
    on (org, id) is the second guard, for any copy arriving once the inbox forgot it.
    A malformed event raises: the consumer retries it, then keeps it as a dead letter.
    """
    if not event.orgid:
        # A user without an organisation (the platform super admin): nobody to bill.
        USAGE_EVENTS_SKIPPED.labels("no_organization").inc()
        return
    org_id = uuid.UUID(event.orgid)
    usage = GatewayUsage.model_validate(event.data)
    await UsageEventRepository(session).insert_new(
        org_id=org_id,
        source="gateway",
        events=[
            NewEvent(
                id=event.id,
                type=API_REQUESTS,
                subject=str(org_id),
                time=usage.timestamp,
                data_json=json.dumps(event.data, separators=(",", ":")),
            )
        ],
    )


def gateway_usage_consumer(
    *, js: JetStreamContext, sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> DurableConsumer:
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=USAGE_STREAM,
        durable=name,
        filter_subject=USAGE_RECORDED,
        handler=record_gateway_usage,
    )
