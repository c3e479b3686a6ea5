"""The gateway's usage events (stream USAGE) become events of the built-in api_requests meter."""

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
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
    stream: str = USAGE_STREAM,
    subject: str = USAGE_RECORDED,
) -> DurableConsumer:
    """The USAGE consumer: up to batch_size events per transaction, acked after its commit.
    (stream and subject are for tests and benchmarks that need a stream of their own.)"""
    return DurableConsumer(
        js=js,
        sessionmaker=sessionmaker,
        stream=stream,
        durable=name,
        filter_subject=subject,
        handler=record_gateway_usage,
        batch_handler=record_gateway_usage_batch,
        batch_size=batch_size,
        max_deliver=max_deliver,
        retry_delay_seconds=retry_delay_seconds,
        ack_wait_seconds=ack_wait_seconds,
    )


class UsageConsumers:
    """Several copies of the USAGE consumer in one process, sharing its durable JetStream
    consumer: while one waits for PostgreSQL (its statements, its commit's flush to disk), another
    parses and stores the next batch. Each batch is still one transaction, acked after commit, so
    nothing changes for exactly-once; JetStream hands each message to one copy at a time.

    JetStream gives a consumer at most max_ack_pending unacknowledged messages (1,000 unless
    set), so run() first raises it to tasks x batch_size: otherwise the copies would wait for
    each other's acks and gain nothing.
    """

    def __init__(
        self,
        *,
        js: JetStreamContext,
        sessionmaker: async_sessionmaker[AsyncSession],
        name: str,
        batch_size: int,
        tasks: int,
        ack_wait_seconds: float = 30,
        stream: str = USAGE_STREAM,
        subject: str = USAGE_RECORDED,
    ) -> None:
        self.js, self.name, self.batch_size = js, name, batch_size
        self.ack_wait_seconds, self.stream, self.subject = ack_wait_seconds, stream, subject
        self.consumers = [
            gateway_usage_consumer(
                js=js,
                sessionmaker=sessionmaker,
                name=name,
                batch_size=batch_size,
                ack_wait_seconds=ack_wait_seconds,
                stream=stream,
                subject=subject,
            )
            for _ in range(tasks)
        ]

    async def run(self) -> None:
        await self.ensure_max_ack_pending(len(self.consumers) * self.batch_size)
        async with asyncio.TaskGroup() as group:
            for consumer in self.consumers:
                group.create_task(consumer.run())

    async def ensure_max_ack_pending(self, wanted: int) -> None:
        """Create the durable consumer as DurableConsumer would, with room for wanted
        unacknowledged messages; or raise the room of an existing one (nothing else changes)."""
        try:
            info = await self.js.consumer_info(self.stream, self.name)
        except NotFoundError:
            await self.js.add_consumer(
                self.stream,
                ConsumerConfig(
                    name=self.name,
                    durable_name=self.name,
                    filter_subject=self.subject,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait_seconds,
                    max_deliver=-1,  # the kit dead-letters, so the server never drops
                    max_ack_pending=wanted,
                ),
            )
            return
        current = info.config.max_ack_pending
        if current is not None and 0 < current < wanted:
            info.config.max_ack_pending = wanted
            await self.js.add_consumer(self.stream, info.config)
