"""Durable consumers for test apps that start at a stream's current end."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from tollgate_shared.events.streams import ensure_stream


@asynccontextmanager
async def consumer_from_stream_end(
    nats_url: str, stream: StreamConfig, filter_subject: str, *, prefix: str
) -> AsyncIterator[str]:
    """A durable consumer name for one app, created before the app creates it, delivering only
    new events; deleted at the end.

    The app would create it delivering the whole stream, which is right in production (nothing
    is lost) but would replay every event other suites published on a shared NATS, and two apps
    with one name would split the events between their databases."""
    assert stream.name is not None
    name = f"{prefix}-{stream.name.lower()}-test-{uuid.uuid4().hex[:10]}"
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        await ensure_stream(js, stream)
        await js.add_consumer(
            stream.name,
            ConsumerConfig(
                durable_name=name,
                filter_subject=filter_subject,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=30,
                max_deliver=-1,
            ),
        )
        yield name
        await js.delete_consumer(stream.name, name)
    finally:
        await client.close()
