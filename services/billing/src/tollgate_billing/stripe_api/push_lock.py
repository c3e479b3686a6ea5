"""One push to Stripe at a time per customer, across replicas. Stripe puts every pending item
of a customer on the next invoice made: two pushes of one customer's invoices at once (the
collection job and the customer's POST .../pay) would each take the other's items and both
fail the total check. A PostgreSQL session-level advisory lock keyed by the customer is held on
a connection of its own in autocommit, so no transaction stays open across Stripe's calls; a
replica that dies drops its connection and so the lock (ADR 0021)."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

logger = structlog.get_logger(__name__)

LOCK = sa.text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


@asynccontextmanager
async def customer_push_lock(
    sessionmaker: async_sessionmaker[AsyncSession], customer_id: uuid.UUID
) -> AsyncIterator[None]:
    """Wait until no other push of the customer runs (in any replica), then hold it until the
    block ends. Another customer's pushes are not held up (a hash collision of two customers
    only serializes them)."""
    async with advisory_lock(sessionmaker, f"tollgate-stripe-push-{customer_id}"):
        yield


@asynccontextmanager
async def advisory_lock(
    sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> AsyncIterator[None]:
    """A session-level advisory lock on the name, held on a connection of its own in
    autocommit (no transaction open over Stripe's calls) until the block ends."""
    engine = sessionmaker.kw.get("bind")
    assert isinstance(engine, AsyncEngine), "Stripe locks need a sessionmaker on an engine"
    key = {"key": name}
    async with engine.connect() as connection:
        locking = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await locking.execute(LOCK, key)
        try:
            yield
        finally:
            try:
                await locking.execute(UNLOCK, key)
            except Exception:
                # The lock must not go back to the pool with the connection: closed, it is gone.
                logger.exception("stripe advisory lock not released: connection dropped", name=name)
                await connection.invalidate()
