"""Durable JetStream consumer with an inbox: each event's effects are applied exactly once.

The event id goes into the inbox table in the same transaction as the handler's effects; the
message is acked only after commit. A redelivery (crash before ack) finds the id and is skipped.
After max_deliver failed attempts the message is stored as a dead letter and acked, never dropped.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
import sqlalchemy as sa
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.tables import dead_letters, inbox
from tollgate_shared.metrics import EVENTS_CONSUMED

logger = structlog.get_logger(__name__)

EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


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
        max_deliver: int = 5,
        ack_wait_seconds: float = 30,
        batch_size: int = 50,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        self.js, self.sessionmaker = js, sessionmaker
        self.stream, self.durable, self.filter_subject = stream, durable, filter_subject
        self.handler, self.max_deliver = handler, max_deliver
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
                    messages = await subscription.fetch(self.batch_size, timeout=1)
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
                for message in messages:
                    await self.process(message)
        finally:
            # Messages still queued in the subscription would make the client's drain wait out
            # its whole bound at shutdown; they are redelivered to the next consumer anyway.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

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
