"""A throwaway schema holding the kit's tables, and a JetStream stream per test."""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_shared.database import create_engine
from tollgate_shared.events.streams import ensure_stream, stream_for_service
from tollgate_shared.events.tables import kit_metadata

SCHEMA = "kittest"

effects = sa.Table(
    "effects",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
)


@pytest.fixture(scope="session")
async def engine(new_database: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(new_database("kit"), schema=SCHEMA)
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        await connection.run_sync(kit_metadata.create_all)
        await connection.run_sync(effects.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@dataclass
class TestStream:
    """A stream of its own for one test: service name 'kt<hex>' owns tollgate.kt<hex>.>"""

    service: str
    js: JetStreamContext

    @property
    def name(self) -> str:
        return self.service.upper()

    def subject(self, action: str = "thing.happened") -> str:
        return f"tollgate.{self.service}.{action}"

    async def message_count(self) -> int:
        return int((await self.js.stream_info(self.name)).state.messages)


@pytest.fixture
async def stream(nats_client: Client) -> AsyncIterator[TestStream]:
    service = "kt" + uuid.uuid4().hex[:10]
    js = nats_client.jetstream()
    await ensure_stream(js, stream_for_service(service))
    yield TestStream(service, js)
    await js.delete_stream(service.upper())
