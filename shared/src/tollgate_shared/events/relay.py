"""Outbox relay: publishes committed outbox rows to JetStream, then marks them published.

A crash between publish and mark republishes the row with the same Nats-Msg-Id, which JetStream's
duplicate window drops: each committed event lands in the stream exactly once.
"""

import asyncio
import json
from datetime import timedelta

import psycopg
import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollgate_shared.events.outbox import NOTIFY_CHANNEL
from tollgate_shared.events.tables import outbox
from tollgate_shared.metrics import OUTBOX_PUBLISHED

logger = structlog.get_logger(__name__)
KEEP_PUBLISHED = timedelta(days=7)


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        js: JetStreamContext,
        service: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
    ) -> None:
        self.engine, self.js, self.service = engine, js, service
        self.batch_size, self.poll_interval = batch_size, poll_interval

    async def run(self) -> None:
        """Publish until cancelled: woken by LISTEN/NOTIFY, polling as the fallback."""
        while True:
            try:
                await self._listen_and_publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay failed; retrying", service=self.service)
                await asyncio.sleep(self.poll_interval)

    async def _listen_and_publish(self) -> None:
        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as listener:
            await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            while True:
                while await self.publish_pending() == self.batch_size:
                    pass
                await self.delete_old_published()
                async for _ in listener.notifies(timeout=self.poll_interval, stop_after=1):
                    pass

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        async with self.engine.begin() as connection:
            rows = (
                await connection.execute(
                    sa.select(outbox.c.id, outbox.c.subject, outbox.c.payload)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.position)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self.js.publish(
                    row.subject,
                    json.dumps(row.payload).encode(),
                    headers={"Nats-Msg-Id": str(row.id)},
                )
            if rows:
                await self.mark_published(connection, [row.id for row in rows])
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def mark_published(self, connection: AsyncConnection, ids: list[object]) -> None:
        await connection.execute(
            sa.update(outbox).where(outbox.c.id.in_(ids)).values(published_at=sa.func.now())
        )

    async def delete_old_published(self) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                sa.delete(outbox).where(outbox.c.published_at < sa.func.now() - KEEP_PUBLISHED)
            )
