"""Publishes the spool to the USAGE stream, in order, in acknowledged batches.

A batch is sent with publish_async (no round trip per event) and the spool's cursor moves only
once JetStream acknowledged every event of it. A failure leaves the cursor where it was: the
batch is sent again later with the same Nats-Msg-Id (the request id), and JetStream drops the
copies it already stored. While NATS is unreachable events simply wait in the spool.
"""

import asyncio
import contextlib
import json

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from tollgate_gateway.usage.event import USAGE_RECORDED
from tollgate_gateway.usage.metrics import DROPPED, PUBLISH_FAILURES, PUBLISHED
from tollgate_gateway.usage.spool import UsageSpool
from tollgate_shared.events.streams import ensure_stream, usage_stream

logger = structlog.get_logger(__name__)

# Without appends to wake it, the publisher still looks at the spool this often.
IDLE_CHECK_SECONDS = 1.0


class UsagePublisher:
    def __init__(
        self,
        *,
        spool: UsageSpool,
        nats_client: Client,
        ack_timeout_seconds: float,
        js: JetStreamContext | None = None,
        batch_size: int = 500,
        retry_seconds: float = 0.5,
    ) -> None:
        self.spool, self.nats = spool, nats_client
        # Its own context by default; its limit of unacknowledged publishes stays above a batch.
        self.js = js or nats_client.jetstream(publish_async_max_pending=max(batch_size * 2, 4000))
        self.ack_timeout_seconds, self.batch_size = ack_timeout_seconds, batch_size
        self.retry_seconds = retry_seconds
        self._waiting = False  # logged once per outage, not once per attempt

    async def run(self) -> None:
        while True:
            # Cleared before reading: an append during the publication rings again.
            self.spool.appended.clear()
            try:
                caught_up = await self.publish_pending()
            except Exception:
                # A disk error or a bug must not stop publishing for good: the spool keeps all.
                logger.exception("usage publisher failed; retrying")
                caught_up = False
            if caught_up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.spool.appended.wait(), IDLE_CHECK_SECONDS)
            else:
                await asyncio.sleep(self.retry_seconds)

    async def publish_pending(self) -> bool:
        """Publish batches until the spool is drained (True) or JetStream cannot take them."""
        while True:
            batch = self.spool.read_batch(max_events=self.batch_size)
            if batch.end == self.spool.committed:
                return True
            if batch.lines:
                if not self.nats.is_connected:
                    self._wait_for_jetstream("NATS is unreachable")
                    return False
                try:
                    await self._publish(batch.lines)
                except (nats.errors.Error, TimeoutError) as error:
                    PUBLISH_FAILURES.inc()
                    self._wait_for_jetstream(repr(error))
                    if isinstance(error, NoStreamResponseError):
                        await self._recreate_stream()
                    return False
            self.spool.commit(batch.end)
            if self._waiting:
                self._waiting = False
                logger.info("usage events published again", lag_bytes=self.spool.lag_bytes)

    async def drain(self, timeout_seconds: float) -> None:
        """At shutdown: publish what is left, within a bound; the rest waits for the next start."""
        try:
            drained = await asyncio.wait_for(self.publish_pending(), timeout_seconds)
        except TimeoutError:
            drained = False
        if not drained:
            logger.warning(
                "usage events left in the spool for the next start",
                lag_bytes=self.spool.lag_bytes,
                directory=str(self.spool.directory),
            )

    async def _publish(self, lines: list[bytes]) -> None:
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for line in lines:
                headline = _headline(line)
                if headline is None:
                    continue
                event_id, subject = headline
                acks.append(
                    await self.js.publish_async(
                        subject, line.rstrip(b"\n"), headers={"Nats-Msg-Id": event_id}
                    )
                )
            results = await asyncio.wait_for(asyncio.gather(*acks), self.ack_timeout_seconds)
        finally:
            for ack in acks:
                ack.cancel()  # no-op once done; otherwise frees the client's pending slot
        duplicates = sum(1 for result in results if result.duplicate)
        PUBLISHED.labels("stored").inc(len(results) - duplicates)
        PUBLISHED.labels("duplicate").inc(duplicates)

    async def _recreate_stream(self) -> None:
        """No stream took the subject (deleted by hand?): ensure it for the next attempt."""
        try:
            await ensure_stream(self.js, usage_stream())
        except nats.errors.Error as error:
            logger.warning("cannot ensure the USAGE stream", error=repr(error))

    def _wait_for_jetstream(self, reason: str) -> None:
        if not self._waiting:
            self._waiting = True
            logger.warning(
                "usage events wait in the spool until JetStream takes them",
                reason=reason,
                lag_bytes=self.spool.lag_bytes,
            )


def _headline(line: bytes) -> tuple[str, str] | None:
    """(id, type) of a spooled CloudEvent, or None for a line that cannot be one."""
    try:
        event = json.loads(line)
        headline = str(event["id"]), str(event["type"])
    except (ValueError, KeyError, TypeError):
        headline = None
    if headline is None or headline[1] != USAGE_RECORDED:
        DROPPED.labels("unreadable").inc()
        logger.error("unreadable usage line skipped", bytes=len(line))
        return None
    return headline
