"""The gateway's usage events, consumed from JetStream, become api_requests events once each."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_metering.gateway_usage.handlers import (
    USAGE_RECORDED,
    gateway_usage_consumer,
    record_gateway_usage,
)
from tollgate_shared.database import create_engine, create_sessionmaker
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import USAGE_STREAM, ensure_stream, usage_stream
from tollgate_shared.events.tables import dead_letters
from tollgate_shared.migrations import upgrade

from .conftest import stored_events

SKIPPED = "tollgate_metering_gateway_usage_skipped_total"


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[nats.js.JetStreamContext]:
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


def usage_event(org_id: uuid.UUID | None, **data) -> dict:
    """A usage event as the gateway publishes it (docs/events.md)."""
    request_id = uuid.uuid4().hex
    received = datetime.now(UTC) - timedelta(milliseconds=3)
    org = str(org_id) if org_id else None
    body = {
        "specversion": "1.0",
        "id": request_id,
        "source": "/tollgate/gateway",
        "type": USAGE_RECORDED,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "request_id": request_id,
            "organization_id": org,
            "principal_type": "key",
            "key_id": str(uuid.uuid4()),
            "user_id": None,
            "route": "demo",
            "meter": "api_requests",
            "method": "GET",
            "status": 200,
            "latency_ms": 2.417,
            "request_bytes": 0,
            "response_bytes": 71,
            "timestamp": received.isoformat(),
            **data,
        },
    }
    if org:
        body["orgid"] = org
    return body


async def publish(js, event: dict, message_id: str | None = None):
    headers = {"Nats-Msg-Id": message_id or event["id"]}
    return await js.publish(USAGE_RECORDED, json.dumps(event).encode(), headers=headers)


async def until_consumed(db, consumer: str, event_id: str) -> None:
    """Wait for the consumer's inbox to hold the event (it commits the effects at once)."""
    query = sa.text(
        "SELECT count(*) FROM metering.inbox WHERE consumer = :consumer AND event_id = :id"
    )
    for _ in range(200):
        async with db() as session:
            if await session.scalar(query, {"consumer": consumer, "id": event_id}):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} was not consumed")


async def test_a_usage_event_becomes_one_api_requests_event(js, db, acme, metering_settings):
    sent = usage_event(acme.org_id, status=503, route="search")
    await publish(js, sent)
    await until_consumed(db, metering_settings.usage_consumer_name, sent["id"])

    [row] = await stored_events(db, acme)
    assert row["id"] == sent["id"]
    assert row["type"] == "api_requests"
    assert row["subject"] == str(acme.org_id)
    assert row["time"] == datetime.fromisoformat(sent["data"]["timestamp"])
    assert row["data"] == sent["data"]
    assert row["source"] == "gateway"


async def test_the_same_usage_event_delivered_twice_is_stored_once(js, db, acme, metering_settings):
    sent = usage_event(acme.org_id)
    first = await publish(js, sent)
    same_id = await publish(js, sent)
    # A copy JetStream does not recognise (after its 10-minute window, or another message id).
    other_id = await publish(js, sent, message_id=uuid.uuid4().hex)
    assert (bool(first.duplicate), same_id.duplicate, bool(other_id.duplicate)) == (
        False,
        True,
        False,
    )
    later = usage_event(acme.org_id)
    await publish(js, later)
    # The consumer handles the stream in order: once the later event is in, both copies were.
    await until_consumed(db, metering_settings.usage_consumer_name, later["id"])

    rows = await stored_events(db, acme)
    assert sorted(row["id"] for row in rows) == sorted([sent["id"], later["id"]])


async def test_an_event_without_organisation_is_skipped(js, db, metering_settings):
    skipped_before = REGISTRY.get_sample_value(SKIPPED, {"reason": "no_organization"}) or 0
    sent = usage_event(None, principal_type="user", key_id=None, user_id=str(uuid.uuid4()))
    await publish(js, sent)
    await until_consumed(db, metering_settings.usage_consumer_name, sent["id"])

    async with db() as session:
        stored = await session.scalar(
            sa.text("SELECT count(*) FROM metering.usage_events WHERE id = :id"),
            {"id": sent["id"]},
        )
    assert stored == 0
    assert REGISTRY.get_sample_value(SKIPPED, {"reason": "no_organization"}) >= skipped_before + 1


async def test_an_event_seen_again_after_the_inbox_forgot_it_still_counts_once(db, acme):
    event = CloudEvent.model_validate(usage_event(acme.org_id))
    for _ in range(2):
        async with db() as session, session.begin():
            await record_gateway_usage(session, event)
    assert [row["id"] for row in await stored_events(db, acme)] == [event.id]


# Batches: a consumer of this module's own, on a database only it writes to. The app's consumer
# stores every usage event of the session in the app's database, which would hide a consumer
# here that stores nothing.

CONSUMED = "tollgate_events_consumed_total"


@pytest.fixture(scope="module")
async def own_db(new_database: Callable[[str], str]) -> AsyncIterator[async_sessionmaker]:
    url = new_database("metering_usage_batches")
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=url, schema=SERVICE)
    engine = create_engine(url, schema=SERVICE)
    yield create_sessionmaker(engine)
    await engine.dispose()


@asynccontextmanager
async def usage_consumer(
    js, sessionmaker: async_sessionmaker[AsyncSession], **options: Any
) -> AsyncIterator[DurableConsumer]:
    """The service's usage consumer under a durable name of its own, from the stream's end."""
    name = f"metering-usage-batch-test-{uuid.uuid4().hex[:10]}"
    await ensure_stream(js, usage_stream())
    await js.add_consumer(
        USAGE_STREAM,
        ConsumerConfig(
            durable_name=name,
            filter_subject=USAGE_RECORDED,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=options.get("ack_wait_seconds", 30),
            max_deliver=-1,
        ),
    )
    try:
        yield gateway_usage_consumer(
            js=js, sessionmaker=sessionmaker, name=name, batch_size=500, **options
        )
    finally:
        await js.delete_consumer(USAGE_STREAM, name)


async def publish_all(js, events: Sequence[dict], *, new_message_ids: bool = False) -> list:
    acks = []
    for start in range(0, len(events), 200):
        chunk = events[start : start + 200]
        acks += await asyncio.gather(
            *(publish(js, event, uuid.uuid4().hex if new_message_ids else None) for event in chunk)
        )
    return acks


@asynccontextmanager
async def running(consumer: DurableConsumer) -> AsyncIterator[None]:
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until_acked(js, consumer: DurableConsumer, stream_sequence: int) -> None:
    """Wait until the consumer acked everything up to stream_sequence (stored or dead letter)."""
    for _ in range(600):
        info = await js.consumer_info(USAGE_STREAM, consumer.durable)
        if info.ack_floor.stream_seq >= stream_sequence:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{consumer.durable} did not ack up to {stream_sequence}")


async def received_at_by_id(db, org_id: uuid.UUID) -> dict[str, datetime]:
    async with db() as session:
        rows = await session.execute(
            sa.text("SELECT id, received_at FROM metering.usage_events WHERE org_id = :org"),
            {"org": org_id},
        )
        return {row.id: row.received_at for row in rows}


def outcome_count(consumer: DurableConsumer, outcome: str) -> float:
    labels = {"consumer": consumer.durable, "outcome": outcome}
    return REGISTRY.get_sample_value(CONSUMED, labels) or 0


async def fetch_mine(subscription, ids: set[str]) -> list:
    """Fetch until every message with one of the ids came (other suites may publish too)."""
    messages: list = []
    while {json.loads(message.data)["id"] for message in messages} < ids:
        messages += await subscription.fetch(500, timeout=5)
    return messages


async def test_a_thousand_usage_events_are_stored_once_each_in_few_transactions(
    js, own_db, acme, globex
):
    sent = [usage_event(acme.org_id) for _ in range(700)]
    sent += [usage_event(globex.org_id) for _ in range(300)]
    async with usage_consumer(js, own_db) as consumer:
        acks = await publish_all(js, sent)  # all waiting before the consumer starts
        async with running(consumer):
            await until_acked(js, consumer, acks[-1].seq)
            stored = await received_at_by_id(own_db, acme.org_id)
            stored_globex = await received_at_by_id(own_db, globex.org_id)
            assert (len(stored), len(stored_globex)) == (700, 300)
            assert set(stored) | set(stored_globex) == {event["id"] for event in sent}
            # received_at is the transaction's time: one at a time would give 1,000 of them.
            assert len(set(stored.values()) | set(stored_globex.values())) <= 6
            assert outcome_count(consumer, "applied") == 1000

            # The same events again: JetStream drops the copies with the same message id; the
            # inbox catches the ones it cannot recognise.
            again = await publish_all(js, sent)
            assert {bool(ack.duplicate) for ack in again} == {True}
            copies = await publish_all(js, sent, new_message_ids=True)
            assert {bool(ack.duplicate) for ack in copies} == {False}
            await until_acked(js, consumer, copies[-1].seq)

    assert outcome_count(consumer, "duplicate") == 1000
    assert await received_at_by_id(own_db, acme.org_id) == stored
    assert await received_at_by_id(own_db, globex.org_id) == stored_globex


async def test_a_batch_delivered_again_after_its_commit_is_not_stored_again(js, own_db, acme):
    """The process commits the batch and its acks are lost: JetStream delivers it again."""
    sent = [usage_event(acme.org_id) for _ in range(50)]
    ids = {event["id"] for event in sent}
    async with usage_consumer(js, own_db, ack_wait_seconds=1) as consumer:
        await publish_all(js, sent)
        subscription = await js.pull_subscribe(
            USAGE_RECORDED, durable=consumer.durable, stream=USAGE_STREAM
        )
        messages = await fetch_mine(subscription, ids)

        async def lost(*_args: Any, **_kwargs: Any) -> None:
            return None

        for message in messages:
            message.ack = lost
        await consumer.process_batch(messages)
        stored = await received_at_by_id(own_db, acme.org_id)
        assert set(stored) == ids

        redelivered = await fetch_mine(subscription, ids)  # after the 1 s ack wait
        mine = [message for message in redelivered if json.loads(message.data)["id"] in ids]
        assert {message.metadata.num_delivered for message in mine} == {2}
        outcomes = await consumer.process_batch(redelivered)
        assert {
            outcome
            for message, outcome in zip(redelivered, outcomes, strict=True)
            if message in mine
        } == {"duplicate"}
        await subscription.unsubscribe()
    assert await received_at_by_id(own_db, acme.org_id) == stored


async def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_stored(js, own_db, acme):
    good = [usage_event(acme.org_id) for _ in range(20)]
    # jsonb cannot hold the NUL character: the insert of this one fails in PostgreSQL.
    poison = usage_event(acme.org_id, route="demo\x00")
    async with usage_consumer(js, own_db, max_deliver=2, retry_delay_seconds=0.05) as consumer:
        acks = await publish_all(js, [*good[:10], poison, *good[10:]])  # one batch
        async with running(consumer):
            await until_acked(js, consumer, acks[-1].seq)

    stored = await received_at_by_id(own_db, acme.org_id)
    assert set(stored) == {event["id"] for event in good}
    async with own_db() as session:
        [letter] = (
            await session.execute(
                sa.select(dead_letters).where(dead_letters.c.consumer == consumer.durable)
            )
        ).all()
    assert (letter.event_id, letter.deliveries) == (poison["id"], 2)
    assert json.loads(letter.payload) == poison
    assert outcome_count(consumer, "applied") == 20
