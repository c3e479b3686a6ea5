"""Slots nobody holds: left by a process that died and whose replica never started again.

At start, each gateway publishes the events of every free slot beside its own, one slot at a
time, then lets it go. The slot's lock keeps two gateways from publishing the same slot.
"""

import asyncio

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from tollgate_gateway.usage.publisher import UsagePublisher
from tollgate_gateway.usage.spool import UsageSpool

logger = structlog.get_logger(__name__)


async def publish_orphaned_slots(
    own: UsageSpool, *, nats_client: Client, js: JetStreamContext, ack_timeout_seconds: float
) -> None:
    for slot_directory in sorted(own.directory.parent.iterdir()):
        if slot_directory == own.directory or not slot_directory.name.isdigit():
            continue
        orphan = UsageSpool.take(slot_directory, max_bytes=own.max_bytes)
        if orphan is None:
            continue  # a running process owns it
        try:
            if orphan.lag_bytes:
                logger.info(
                    "publishing an orphaned usage spool",
                    directory=str(slot_directory),
                    lag_bytes=orphan.lag_bytes,
                )
            publisher = UsagePublisher(
                spool=orphan,
                nats_client=nats_client,
                js=js,
                ack_timeout_seconds=ack_timeout_seconds,
            )
            # Until drained, waiting out NATS outages like the gateway's own publisher.
            while True:
                if await publisher.publish_pending():
                    break
                await asyncio.sleep(publisher.retry_seconds)
        finally:
            orphan.close()
