"""Every committed outbox event reaches JetStream exactly once; rolled-back ones never do."""

import asyncio
import json

import pytest
import sqlalchemy as sa

from tollgate_shared.events.envelope import new_event
from tollgate_shared.events.outbox import enqueue
from tollgate_shared.events.relay import OutboxRelay
from tollgate_shared.events.tables import outbox


async def _commit_events(engine, stream, count):
    events = [
        new_event(service=stream.service, type_=stream.subject(), data={"n": n})
        for n in range(count)
    ]
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session, session.begin():
        for event in events:
            await enqueue(session, event)
    return events


async def _unpublished(engine, events):
    async with engine.connect() as connection:
        return (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(
                    outbox.c.id.in_([event.id for event in events]),
                    outbox.c.published_at.is_(None),
                )
            )
        ).scalar_one()


async def test_committed_events_are_published_once_in_order(engine, stream):
    events = await _commit_events(engine, stream, 5)
    relay = OutboxRelay(engine=engine, js=stream.js, service=stream.service)
    while await relay.publish_pending():
        pass
    assert await stream.message_count() == 5
    assert await _unpublished(engine, events) == 0
    subscription = await stream.js.pull_subscribe(stream.subject(), stream=stream.name)
    messages = await subscription.fetch(5, timeout=2)
    assert [json.loads(m.data)["data"]["n"] for m in messages] == [0, 1, 2, 3, 4]
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [e.id for e in events]
    assert json.loads(messages[0].data)["specversion"] == "1.0"


async def test_rolled_back_transaction_publishes_nothing(engine, stream):
    from sqlalchemy.ext.asyncio import AsyncSession

    event = new_event(service=stream.service, type_=stream.subject(), data={})
    async with AsyncSession(engine) as session, session.begin():
        await enqueue(session, event)
        await session.rollback()
    relay = OutboxRelay(engine=engine, js=stream.js, service=stream.service)
    await relay.publish_pending()
    assert await stream.message_count() == 0


async def test_relay_killed_between_publish_and_mark_publishes_once(engine, stream, monkeypatch):
    events = await _commit_events(engine, stream, 3)
    crashing = OutboxRelay(engine=engine, js=stream.js, service=stream.service)

    async def crash(*_args, **_kwargs):
        raise RuntimeError("killed after publishing, before marking")

    monkeypatch.setattr(crashing, "mark_published", crash)
    with pytest.raises(RuntimeError):
        await crashing.publish_pending()
    assert await _unpublished(engine, events) == 3  # the mark was lost with the crash
    assert await stream.message_count() == 3

    restarted = OutboxRelay(engine=engine, js=stream.js, service=stream.service)
    assert await restarted.publish_pending() >= 3  # republished with the same Nats-Msg-Id...
    assert await stream.message_count() == 3  # ...which JetStream drops as duplicates
    assert await _unpublished(engine, events) == 0


async def test_relay_wakes_on_notify_not_on_poll(engine, stream):
    relay = OutboxRelay(engine=engine, js=stream.js, service=stream.service, poll_interval=60)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # the relay is now listening and idle
        await _commit_events(engine, stream, 1)
        for _ in range(100):
            if await stream.message_count() == 1:
                break
            await asyncio.sleep(0.05)
        assert await stream.message_count() == 1  # well before the 60 s poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
