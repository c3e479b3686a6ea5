"""The inbox makes each event's effects happen once: redeliveries are skipped, poison is kept."""

import asyncio

import pytest
import sqlalchemy as sa
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate_shared.database import create_sessionmaker
from tollgate_shared.events.consumer import DurableConsumer
from tollgate_shared.events.envelope import new_event
from tollgate_shared.events.tables import dead_letters

from .conftest import effects


async def _record_effect(session: AsyncSession, event) -> None:
    await session.execute(sa.insert(effects).values(event_id=event.id))


async def _effects_of(engine, event_id: str) -> int:
    async with engine.connect() as connection:
        return (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(effects)
                .where(effects.c.event_id == event_id)
            )
        ).scalar_one()


def _consumer(engine, stream, handler, **options) -> DurableConsumer:
    return DurableConsumer(
        js=stream.js,
        sessionmaker=create_sessionmaker(engine),
        stream=stream.name,
        durable=f"{stream.service}-test",
        filter_subject=f"tollgate.{stream.service}.>",
        handler=handler,
        **options,
    )


async def _publish(stream, **data):
    event = new_event(service=stream.service, type_=stream.subject(), data=data)
    await stream.js.publish(event.type, event.to_json(), headers={"Nats-Msg-Id": event.id})
    return event


async def test_crash_after_commit_before_ack_applies_once(engine, stream):
    consumer = _consumer(engine, stream, _record_effect, ack_wait_seconds=1)
    event = await _publish(stream)
    subscription = await stream.js.pull_subscribe(
        consumer.filter_subject,
        durable=consumer.durable,
        stream=stream.name,
        config=ConsumerConfig(ack_wait=1),
    )
    [first] = await subscription.fetch(1, timeout=2)

    async def crash_on_ack(*_args, **_kwargs):
        raise ConnectionError("process died after commit, before ack")

    first.ack = crash_on_ack  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await consumer.process(first)
    assert await _effects_of(engine, event.id) == 1

    [again] = await subscription.fetch(1, timeout=5)  # redelivered after ack_wait
    assert again.metadata.num_delivered == 2
    assert await consumer.process(again) == "duplicate"
    assert await _effects_of(engine, event.id) == 1


async def test_same_event_published_twice_is_applied_once(engine, stream):
    """A second copy that slips past JetStream's duplicate window is still caught by the inbox."""
    consumer = _consumer(engine, stream, _record_effect)
    event = new_event(service=stream.service, type_=stream.subject(), data={})
    await stream.js.publish(event.type, event.to_json())  # no Nats-Msg-Id: two stream entries
    await stream.js.publish(event.type, event.to_json())
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                info = await stream.js.consumer_info(stream.name, consumer.durable)
            except NotFoundError:  # the consumer task has not created it yet
                continue
            if info.num_ack_pending == 0 and info.ack_floor.stream_seq == 2:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await _effects_of(engine, event.id) == 1


async def test_failing_handler_ends_in_dead_letter_after_max_deliveries(engine, stream):
    attempts = []

    async def always_fails(session, event):
        attempts.append(event.id)
        await session.execute(sa.insert(effects).values(event_id=event.id))  # rolled back
        raise ValueError("cannot handle this")

    consumer = _consumer(engine, stream, always_fails, max_deliver=3, retry_delay_seconds=0.05)
    event = await _publish(stream, poison=True)
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            async with engine.connect() as connection:
                row = (
                    await connection.execute(
                        sa.select(dead_letters).where(dead_letters.c.event_id == event.id)
                    )
                ).first()
            if row is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert row is not None
    assert row.deliveries == 3
    assert "cannot handle this" in row.error
    assert attempts == [event.id] * 3
    assert await _effects_of(engine, event.id) == 0


async def test_malformed_message_is_dead_lettered_not_dropped(engine, stream):
    consumer = _consumer(engine, stream, _record_effect)
    await stream.js.publish(stream.subject(), b"{not json")
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(100):
            async with engine.connect() as connection:
                payloads = (
                    (
                        await connection.execute(
                            sa.select(dead_letters.c.payload).where(
                                dead_letters.c.consumer == consumer.durable
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
            if payloads:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert payloads == ["{not json"]


async def _record_effects(session: AsyncSession, events) -> None:
    await session.execute(sa.insert(effects), [{"event_id": event.id} for event in events])


async def _fetch(stream, consumer, count: int, ack_wait: float = 30):
    subscription = await stream.js.pull_subscribe(
        consumer.filter_subject,
        durable=consumer.durable,
        stream=stream.name,
        config=ConsumerConfig(ack_wait=ack_wait),
    )
    return subscription, await subscription.fetch(count, timeout=2)


async def test_a_batch_is_applied_once_even_when_its_acks_are_lost(engine, stream):
    batches = []

    async def record_batch(session, events):
        batches.append([event.id for event in events])
        await _record_effects(session, events)

    consumer = _consumer(engine, stream, _record_effect, batch_handler=record_batch)
    sent = [await _publish(stream, n=n) for n in range(20)]
    subscription, messages = await _fetch(stream, consumer, 20, ack_wait=1)
    assert len(messages) == 20

    async def crash_on_ack(*_args, **_kwargs):
        raise ConnectionError("process died after commit, before ack")

    messages[0].ack = crash_on_ack  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await consumer.process_batch(messages)
    assert batches == [sorted(event.id for event in sent)]  # one handler call, one transaction

    redelivered = await subscription.fetch(20, timeout=5)  # after ack_wait: nothing was acked
    assert {message.metadata.num_delivered for message in redelivered} == {2}
    assert await consumer.process_batch(redelivered) == ["duplicate"] * 20
    assert len(batches) == 1
    for event in sent:
        assert await _effects_of(engine, event.id) == 1


async def test_copies_of_one_event_in_a_batch_are_applied_once(engine, stream):
    consumer = _consumer(engine, stream, _record_effect, batch_handler=_record_effects)
    event = new_event(service=stream.service, type_=stream.subject(), data={})
    other = await _publish(stream)
    for _ in range(2):  # no Nats-Msg-Id: two stream entries
        await stream.js.publish(event.type, event.to_json())
    _, messages = await _fetch(stream, consumer, 3)
    assert await consumer.process_batch(messages) == ["applied", "applied", "duplicate"]
    assert await _effects_of(engine, event.id) == 1
    assert await _effects_of(engine, other.id) == 1


async def test_a_poison_message_fails_alone_and_the_rest_of_its_batch_is_applied(engine, stream):
    poison = await _publish(stream, poison=True)
    good = [await _publish(stream) for _ in range(5)]
    per_message_calls = []

    async def refuse_poison_batch(session, events):
        await _record_effects(session, events)  # rolled back with the batch
        if any(event.data.get("poison") for event in events):
            raise ValueError("cannot handle this batch")

    async def refuse_poison(session, event):
        per_message_calls.append(event.id)
        if event.data.get("poison"):
            raise ValueError("cannot handle this")
        await _record_effect(session, event)

    consumer = _consumer(
        engine,
        stream,
        refuse_poison,
        batch_handler=refuse_poison_batch,
        max_deliver=2,
        retry_delay_seconds=0.05,
    )
    subscription, messages = await _fetch(stream, consumer, 6)
    # The batch failed: each message again on its own; the poison is retried later.
    assert await consumer.process_batch(messages) == ["retry"] + ["applied"] * 5
    assert per_message_calls == [poison.id] + [event.id for event in good]
    for event in good:
        assert await _effects_of(engine, event.id) == 1

    [again] = await subscription.fetch(6, timeout=5)
    assert again.metadata.num_delivered == 2
    assert await consumer.process_batch([again]) == ["dead_letter"]
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dead_letters).where(dead_letters.c.event_id == poison.id)
            )
        ).one()
    assert (row.deliveries, "cannot handle this" in row.error) == (2, True)
    assert await _effects_of(engine, poison.id) == 0
    for event in good:
        assert await _effects_of(engine, event.id) == 1


async def test_a_malformed_message_in_a_batch_is_dead_lettered_and_the_rest_applied(engine, stream):
    consumer = _consumer(engine, stream, _record_effect, batch_handler=_record_effects)
    first = await _publish(stream)
    await stream.js.publish(stream.subject(), b"{not json")
    last = await _publish(stream)
    _, messages = await _fetch(stream, consumer, 3)
    assert await consumer.process_batch(messages) == ["applied", "dead_letter", "applied"]
    assert (await _effects_of(engine, first.id), await _effects_of(engine, last.id)) == (1, 1)
    async with engine.connect() as connection:
        payloads = (
            await connection.execute(
                sa.select(dead_letters.c.payload).where(dead_letters.c.consumer == consumer.durable)
            )
        ).scalars()
        assert list(payloads) == ["{not json"]


async def test_the_consumer_survives_a_batch_that_fails_outright(engine, stream, monkeypatch):
    """Even when handling fails beyond the handler (the database gone), the loop goes on and the
    unacked event is applied once the failure passes."""
    consumer = _consumer(
        engine, stream, _record_effect, ack_wait_seconds=1, retry_delay_seconds=0.05
    )
    real_process_batch, failures = consumer.process_batch, []

    async def failing_once(messages):
        if not failures:
            failures.append(len(messages))
            raise ConnectionError("database unreachable")
        return await real_process_batch(messages)

    monkeypatch.setattr(consumer, "process_batch", failing_once)
    event = await _publish(stream)
    running = asyncio.create_task(consumer.run())
    try:
        for _ in range(100):
            if await _effects_of(engine, event.id) == 1:
                break
            await asyncio.sleep(0.1)
        assert failures == [1]
        assert not running.done()
        assert await _effects_of(engine, event.id) == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
