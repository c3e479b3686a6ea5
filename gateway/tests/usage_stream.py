"""Reading usage events back from JetStream, the way a consumer (metering) would see them."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tollgate_gateway.usage.event import USAGE_RECORDED
from tollgate_gateway.usage.spool import UsageSpool
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import USAGE_STREAM, ensure_stream, usage_stream

DEADLINE_SECONDS = 20.0


@asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(url)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def last_sequence(js: JetStreamContext) -> int:
    """Where the stream ends now (ensured first, as a consumer would, if no gateway did yet)."""
    await ensure_stream(js, usage_stream())
    info = await js.stream_info(USAGE_STREAM)
    return int(info.state.last_seq)


async def usage_events_after(js: JetStreamContext, sequence: int) -> list[CloudEvent]:
    """Every usage event stored after `sequence`, in stream order, through a consumer filtered
    on the usage subject. Checks the envelope against the NATS message on the way."""
    subscription = await js.pull_subscribe(
        USAGE_RECORDED,
        stream=USAGE_STREAM,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=sequence + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30,
        ),
    )
    events: list[CloudEvent] = []
    try:
        while True:
            try:
                messages = await subscription.fetch(200, timeout=1)
            except nats.errors.TimeoutError:
                break  # nothing after `sequence` at all
            for message in messages:
                event = CloudEvent.from_json(message.data)
                assert message.subject == event.type == USAGE_RECORDED
                assert message.headers is not None
                assert message.headers["Nats-Msg-Id"] == event.id
                events.append(event)
            if messages[-1].metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return events


async def wait_until_published(spool: UsageSpool) -> None:
    """Until JetStream acknowledged everything this gateway spooled."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while spool.lag_bytes > 0:
        assert asyncio.get_running_loop().time() < deadline, f"lag {spool.lag_bytes} bytes"
        await asyncio.sleep(0.02)


def spool_of(server: Any) -> UsageSpool:
    """The spool of a gateway served in this process (tests.http.RunningServer)."""
    spool: UsageSpool = server._server.config.app.state.usage_spool
    return spool
