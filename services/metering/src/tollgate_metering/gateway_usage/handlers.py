"""The gateway's usage events (stream USAGE) become events of the built-in api_requests meter."""

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence

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


def _api_request(org_id: uuid.UUID, event: CloudEvent) -> NewEvent:
    """One request of the organisation, billed to the organisation itself.

    A malformed event raises: the consumer retries it, then keeps it as a dead letter.
    """
    usage = GatewayUsage.model_validate(event.data)
    return NewEvent(
        id=event.id,
        type=API_REQUESTS,
        subject=str(org_id),
        time=usage.timestamp,
        data_json=json.dumps(event.data, separators=(",", ":")),
    )


async def record_gateway_usage(session: AsyncSession, event: CloudEvent) -> None:
    """Store one usage event (the consumer's per-message path, also its fallback for a batch
    that failed).

    The consumer's inbox already drops a redelivered event; the insert's ON CONFLICT DO NOTHING
    on (org, id) is the second guard, for any copy arriving once the inbox forgot it.
    """
    await record_gateway_usage_batch(session, [event])


async def record_gateway_usage_batch(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Store a batch of new usage events, every organisation's in one bulk insert, through the
    same insert as the API, so both paths dedupe on (org, id) the same way."""
    by_org: defaultdict[uuid.UUID, list[NewEvent]] = defaultdict(list)
    without_org = 0
    for event in events:
        if not event.orgid:
            # A user without an organisation (the platform super admin): nobody to bill.
            without_org += 1
            continue
        org_id = uuid.UUID(event.orgid)
        by_org[org_id].append(_api_request(org_id, event))
    await UsageEventRepository(session).insert_new_of_organizations(source="gateway", events=by_org)
    if without_org:
        USAGE_EVENTS_SKIPPED.labels("no_organization").inc(without_org)


def gateway_usage_consumer(
    *,
    js: JetStreamContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    batch_size: int,
    max_deliver: int = 5,
    retry_delay_seconds: float = 1.0,
    ack_wait_seconds: float = 30,
) -> DurableConsumer:
    """The USAGE consumer: up to batch_size events per transaction, acked after its commit."""
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=USAGE_STREAM,
        durable=name,
        filter_subject=USAGE_RECORDED,
        handler=record_gateway_usage,
        batch_handler=record_gateway_usage_batch,
        batch_size=batch_size,
        max_deliver=max_deliver,
        retry_delay_seconds=retry_delay_seconds,
        ack_wait_seconds=ack_wait_seconds,
    )
