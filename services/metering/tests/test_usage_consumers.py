"""Several copies of the usage consumer sharing one durable consumer (ADR 0014): each event is
stored once, and the durable consumer gets room for every copy's batch."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import nats
import pytest
import sqlalchemy as sa
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from sqlalchemy.ext.asyncio import async_sessionmaker

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_metering.gateway_usage.handlers import UsageConsumers
from tollgate_shared.database import create_engine, create_sessionmaker
from tollgate_shared.migrations import upgrade

from .test_gateway_usage import received_at_by_id, usage_event


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[nats.js.JetStreamContext]:
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def stream(js) -> AsyncIterator[tuple[str, str]]:
    """A stream of this test's own, shaped like USAGE: the real one is shared with other test
    files' consumers, which count what they receive."""
    token = uuid.uuid4().hex[:8]
    name, subject = f"USAGE_COPIES_{token}", f"test.{token}.usage.recorded"
    await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE))
    yield name, subject
    await js.delete_stream(name)


async def publish_all(js, subject: str, events: list[dict]) -> list:
    acks = []
    for start in range(0, len(events), 200):
        acks += await asyncio.gather(
            *(
                js.publish(
                    subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]}
                )
                for event in events[start : start + 200]
            )
        )
    return acks


@pytest.fixture(scope="module")
async def own_db(new_database: Callable[[str], str]) -> AsyncIterator[async_sessionmaker]:
    """A database only these consumers write to (the app's consumer writes to its own)."""
    url = new_database("metering_usage_copies")
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=url, schema=SERVICE)
    engine = create_engine(url, schema=SERVICE)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def _rollup_count(own_db, org_id: uuid.UUID) -> int:
    async with own_db() as session:
        query = sa.text(
            "SELECT coalesce(sum(event_count), 0) FROM metering.usage_rollups_day"
            " WHERE org_id = :org AND meter_key = 'api_requests'"
        )
        return int(await session.scalar(query, {"org": org_id}))


async def test_three_copies_store_a_backlog_once_each(js, stream, own_db, acme, globex):
    stream_name, subject = stream
    name = "metering-usage"
    # As the tests' apps do: created from the stream's end, with the server's default room.
    await js.add_consumer(
        stream_name,
        ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=30,
            max_deliver=-1,
        ),
    )
    consumers = UsageConsumers(
        js=js,
        sessionmaker=own_db,
        name=name,
        batch_size=500,
        tasks=3,
        stream=stream_name,
        subject=subject,
    )
    sent = [usage_event(acme.org_id) for _ in range(1200)]
    sent += [usage_event(globex.org_id) for _ in range(300)]
    try:
        acks = await publish_all(js, subject, sent)
        task = asyncio.create_task(consumers.run())
        try:
            for _ in range(600):
                info = await js.consumer_info(stream_name, name)
                if info.ack_floor.stream_seq >= acks[-1].seq:
                    break
                assert not task.done(), task
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # Only the room changed: the consumer still delivers from where it was created.
        assert info.config.max_ack_pending == 1500
        assert info.config.deliver_policy == DeliverPolicy.NEW
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await js.delete_consumer(stream_name, name)
    stored = await received_at_by_id(own_db, acme.org_id)
    stored_globex = await received_at_by_id(own_db, globex.org_id)
    assert set(stored) == {event["id"] for event in sent[:1200]}
    assert set(stored_globex) == {event["id"] for event in sent[1200:]}
    assert await _rollup_count(own_db, acme.org_id) == 1200
    assert await _rollup_count(own_db, globex.org_id) == 300


async def test_a_missing_durable_consumer_is_created_with_room_for_every_copy(js, stream, own_db):
    stream_name, subject = stream
    consumers = UsageConsumers(
        js=js,
        sessionmaker=own_db,
        name="metering-usage",
        batch_size=500,
        tasks=4,
        stream=stream_name,
        subject=subject,
    )
    await consumers.ensure_max_ack_pending(2000)
    info = await js.consumer_info(stream_name, "metering-usage")
    assert info.config.max_ack_pending == 2000
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert info.config.deliver_policy == DeliverPolicy.ALL
    assert info.config.filter_subject == subject
    # Never lowered by a process configured with fewer copies.
    await consumers.ensure_max_ack_pending(500)
    assert (await js.consumer_info(stream_name, "metering-usage")).config.max_ack_pending == 2000
