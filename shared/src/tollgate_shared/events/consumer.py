"""Durable JetStream consumer with an inbox: each event's effects are applied exactly once.

The event id goes into the inbox table in the same transaction as the handler's effects; the
message is acked only after commit. A redelivery (crash before ack) finds the id and is skipped.
After max_deliver failed attempts the message is stored as a dead letter and acked, never dropped.

With a batch handler, a fetched batch is applied in one transaction (one inbox insert, one handler
call with the events not seen before), committed, then acked. If that transaction fails, nothing
is acked and the batch is applied again one message at a time, so a poison message is retried and
dead-lettered alone while the others are stored.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
import sqlalchemy as sa
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.tables import dead_letters, inbox
from tollgate_shared.metrics import EVENTS_CONSUMED

logger = structlog.get_logger(__name__)

EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
# Applies a batch's events not seen before (each id once, sorted by id) in the batch's
# transaction; raising rejects the whole batch, which is then applied one message at a time.
BatchHandler = Callable[[AsyncSession, Sequence[CloudEvent]], Awaitable[None]]


# The longest a fetch waits to fill its batch.
FETCH_WAIT_SECONDS = 0.2


class DurableConsumer:
    def __init__(
        self,
        *,
        js: JetStreamContext,
        sessionmaker: async_sessionmaker[AsyncSession],
        stream: str,
        durable: str,
        filter_subject: str,
        handler: EventHandler,
        batch_handler: BatchHandler | None = None,
        max_deliver: int = 5,
        ack_wait_seconds: float = 30,
        batch_size: int = 50,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        self.js, self.sessionmaker = js, sessionmaker
        self.stream, self.durable, self.filter_subject = stream, durable, filter_subject
        self.handler, self.batch_handler, self.max_deliver = handler, batch_handler, max_deliver
        self.ack_wait_seconds, self.batch_size = ack_wait_seconds, batch_size
        self.retry_delay_seconds = retry_delay_seconds

    async def run(self) -> None:
        subscription = await self.js.pull_subscribe(
            self.filter_subject,
            durable=self.durable,
            stream=self.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait_seconds,
                max_deliver=-1,  # we dead-letter ourselves, so nothing is dropped by the server
            ),
        )
        try:
            while True:
                try:
                    # A fetch returns when its batch is full or its wait is over: the wait bounds
                    # how long a lone event waits for company (1 s made event-to-queryable p99
                    # about a second); an idle consumer polls this often, which costs little.
                    messages = await subscription.fetch(self.batch_size, timeout=FETCH_WAIT_SECONDS)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue  # nothing to do for now
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # nats-py may turn our cancellation into another error; honour it anyway.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise asyncio.CancelledError() from None
                    logger.exception("fetch failed", consumer=self.durable)
                    await asyncio.sleep(1)
                    continue
                try:
                    await self.process_batch(messages)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The database itself failing (even the dead-letter write) must not end the
                    # consumer: the unacked messages come back after ack_wait and are tried again.
                    logger.exception("batch not processed", consumer=self.durable)
                    await asyncio.sleep(self.retry_delay_seconds)
        finally:
            # Messages still queued in the subscription would make the client's drain wait out
            # its whole bound at shutdown; they are redelivered to the next consumer anyway.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def process_batch(self, messages: Sequence[Msg]) -> list[str]:
        """Handle fetched messages; returns each one's outcome, in order.

        Without a batch handler, or when the batch's transaction fails, one message at a time.
        """
        batch_handler = self.batch_handler
        if batch_handler is None or len(messages) < 2:  # one message: nothing to share
            return [await self.process(message) for message in messages]
        events: dict[int, CloudEvent] = {}
        for index, message in enumerate(messages):
            with contextlib.suppress(ValidationError):  # dead-lettered by the fallback below
                events[index] = CloudEvent.from_json(message.data)
        try:
            new_ids = await self._apply_batch(
                batch_handler, [(event, messages[index].subject) for index, event in events.items()]
            )
        except Exception as error:
            logger.warning(
                "batch failed, applying its messages one at a time",
                consumer=self.durable,
                messages=len(messages),
                error=repr(error),
            )
            return [await self.process(message) for message in messages]
        outcomes = []
        for index, message in enumerate(messages):
            if index not in events:
                outcomes.append(await self.process(message))
                continue
            # The first copy of an id in the batch is the one that was applied.
            event_id = events[index].id
            outcome = "applied" if event_id in new_ids else "duplicate"
            new_ids.discard(event_id)
            EVENTS_CONSUMED.labels(self.durable, outcome).inc()
            await message.ack()
            outcomes.append(outcome)
        return outcomes

    async def _apply_batch(
        self, batch_handler: BatchHandler, events: Sequence[tuple[CloudEvent, str]]
    ) -> set[str]:
        """Insert the events' ids into the inbox and hand the new ones to the batch handler, in
        one transaction; returns the new ids."""
        if not events:
            return set()
        # Sorted, so two transactions inserting overlapping ids take their locks in one order.
        ordered = sorted(events, key=lambda item: item[0].id)
        incoming = (
            sa.func.unnest(
                sa.bindparam(
                    "event_ids", [event.id for event, _ in ordered], type_=ARRAY(sa.Text())
                ),
                sa.bindparam(
                    "subjects", [subject for _, subject in ordered], type_=ARRAY(sa.Text())
                ),
            )
            .table_valued("event_id", "subject")
            .render_derived(name="incoming")
        )
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                insert(inbox)
                .from_select(
                    ["consumer", "event_id", "subject"],
                    sa.select(
                        sa.literal(self.durable, sa.Text()),
                        incoming.c.event_id,
                        incoming.c.subject,
                    ),
                )
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            new_ids = set(result.scalars().all())
            new_events: dict[str, CloudEvent] = {}
            for event, _ in ordered:
                if event.id in new_ids:
                    new_events.setdefault(event.id, event)
            if new_events:
                await batch_handler(session, list(new_events.values()))
        return new_ids

    async def process(self, message: Msg) -> str:
        """Handle one message; returns the outcome (applied, duplicate, retry, dead_letter)."""
        outcome = await self._apply(message)
        EVENTS_CONSUMED.labels(self.durable, outcome).inc()
        if outcome == "retry":
            # Exponential backoff: 1x, 2x, 4x... the base delay, at most a minute.
            attempt = message.metadata.num_delivered or 1
            delay = min(self.retry_delay_seconds * 2 ** (attempt - 1), 60.0)
            await message.nak(delay=delay)
        else:
            await message.ack()
        return outcome

    async def _apply(self, message: Msg) -> str:
        try:
            event = CloudEvent.from_json(message.data)
        except ValidationError as error:
            await self._dead_letter(message, None, f"not a CloudEvent: {error}")
            return "dead_letter"
        try:
            async with self.sessionmaker() as session, session.begin():
                first_time = await session.scalar(
                    insert(inbox)
                    .values(consumer=self.durable, event_id=event.id, subject=message.subject)
                    .on_conflict_do_nothing()
                    .returning(inbox.c.event_id)
                )
                if first_time is None:
                    return "duplicate"
                await self.handler(session, event)
        except Exception as error:
            deliveries = message.metadata.num_delivered
            logger.warning(
                "event handler failed",
                consumer=self.durable,
                event_id=event.id,
                deliveries=deliveries,
                error=repr(error),
            )
            if deliveries >= self.max_deliver:
                await self._dead_letter(message, event.id, repr(error))
                return "dead_letter"
            return "retry"
        return "applied"

    async def _dead_letter(self, message: Msg, event_id: str | None, error: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                sa.insert(dead_letters).values(
                    consumer=self.durable,
                    subject=message.subject,
                    event_id=event_id,
                    payload=message.data.decode(errors="replace"),
                    error=error,
                    deliveries=message.metadata.num_delivered,
                )
            )
        logger.error("event dead-lettered", consumer=self.durable, event_id=event_id)
