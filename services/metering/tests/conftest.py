import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from nats.js.api import StreamConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tollgate_metering.app import create_app
from tollgate_metering.config import MeteringSettings
from tollgate_metering.gateway_usage.handlers import USAGE_RECORDED
from tollgate_metering.organizations.handlers import ORGANIZATION_EVENTS
from tollgate_metering.testing import migrated_test_settings
from tollgate_shared.errors import PROBLEM_BASE, PROBLEM_JSON
from tollgate_shared.events.streams import stream_for_service, usage_stream
from tollgate_shared.testing.consumers import (
    consumer_from_stream_end as shared_consumer_from_stream_end,
)
from tollgate_shared.testing.database import rolled_back_sessions

# Each table, and which of its rows database_state compares. Gateway usage and organisations
# are left out: every app's consumers also store what other tests publish, at any moment.
TABLES = {
    "meters": "true",
    "usage_events": "source = 'api'",
    "usage_rollups": "meter_key <> 'api_requests'",
    "usage_distinct_values": "true",
    "organizations": "false",
    "entitlement_overrides": "true",
    "entitlement_states": "meter_key <> 'api_requests'",
    "threshold_crossings": "meter_key <> 'api_requests'",
    "usage_changes": "meter_key <> 'api_requests'",
    "usage_rollups_hour": "meter_key <> 'api_requests'",
    "usage_rollups_day": "meter_key <> 'api_requests'",
    "usage_distinct_values_hour": "true",
    "usage_distinct_values_day": "true",
    # Gateway requests only, which other suites publish on a shared NATS.
    "request_analytics_hour": "false",
    "request_analytics_day": "false",
    "request_analytics_day_by": "false",
}


def consumer_from_stream_end(
    nats_url: str, stream: StreamConfig, filter_subject: str
) -> AbstractAsyncContextManager[str]:
    return shared_consumer_from_stream_end(nats_url, stream, filter_subject, prefix="metering")


def usage_consumer_from_stream_end(nats_url: str) -> AbstractAsyncContextManager[str]:
    return consumer_from_stream_end(nats_url, usage_stream(), USAGE_RECORDED)


@asynccontextmanager
async def test_settings(
    *, database_url: str, nats_url: str, identity_public_key: str
) -> AsyncIterator[MeteringSettings]:
    """Migrated settings whose consumers start at the streams' current end."""
    async with (
        usage_consumer_from_stream_end(nats_url) as usage,
        consumer_from_stream_end(
            nats_url, stream_for_service("keys"), ORGANIZATION_EVENTS
        ) as organizations,
    ):
        yield migrated_test_settings(
            database_url=database_url,
            nats_url=nats_url,
            identity_public_key=identity_public_key,
            usage_consumer_name=usage,
            organizations_consumer_name=organizations,
        )


@pytest.fixture(scope="session")
async def metering_settings(
    new_database: Callable[[str], str], nats_url: str, identity_keys: tuple[str, str]
) -> AsyncIterator[MeteringSettings]:
    async with test_settings(
        database_url=new_database("metering"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
    ) as settings:
        yield settings


@pytest.fixture(scope="session")
async def metering_app(metering_settings: MeteringSettings) -> AsyncIterator[FastAPI]:
    app = create_app(metering_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def committed_app(
    new_database: Callable[[str], str], nats_url: str, identity_keys: tuple[str, str]
) -> AsyncIterator[FastAPI]:
    """Another metering app, on a database of its own, for tests that need real commits from
    several connections at once."""
    async with test_settings(
        database_url=new_database("metering_committed"),
        nats_url=nats_url,
        identity_public_key=identity_keys[1],
    ) as settings:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield app


@pytest.fixture
async def db(metering_app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """This test's sessions; everything they write is rolled back at the end."""
    async with rolled_back_sessions(metering_app.state.runtime.engine, metering_app) as sessions:
        yield sessions


@pytest.fixture
async def client(metering_app: FastAPI, db: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metering_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metering") as http:
        yield http


@dataclass
class Org:
    """An organisation (metering knows it only by id), with headers to act as its people and
    keys the way the gateway would forward them."""

    org_id: uuid.UUID
    mint: Callable[..., dict[str, str]]

    def user(self, role: str = "member") -> dict[str, str]:
        return self.mint("user", principal_id=str(uuid.uuid4()), org_id=self.org_id, roles=(role,))

    def key(self, *scopes: str) -> dict[str, str]:
        return self.mint("key", principal_id=str(uuid.uuid4()), org_id=self.org_id, scopes=scopes)

    @property
    def admin(self) -> dict[str, str]:
        return self.user("org_admin")


@pytest.fixture
def acme(mint_identity: Callable[..., dict[str, str]]) -> Org:
    return Org(uuid.uuid4(), mint_identity)


@pytest.fixture
def globex(mint_identity: Callable[..., dict[str, str]]) -> Org:
    return Org(uuid.uuid4(), mint_identity)


async def create_meter(client: httpx.AsyncClient, org: Org, **body: Any) -> dict[str, Any]:
    meter = {"key": "llm_tokens", "name": "LLM tokens", "aggregation": "SUM"}
    meter.update(body)
    if meter["aggregation"] != "COUNT":
        meter.setdefault("value_property", "tokens")
    response = await client.post("/v1/meters", json=meter, headers=org.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def event(id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid event of the llm_tokens meter (SUM of data.tokens); fields replace or add."""
    body = {
        "id": uuid.uuid4().hex if id is None else id,
        "type": "llm_tokens",
        "subject": "customer-1",
        "time": datetime.now(UTC).isoformat(),
        "data": {"tokens": 120, "model": "small"},
    }
    body.update(fields)
    return body


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def stored_events(
    db: async_sessionmaker[AsyncSession], org: Org | uuid.UUID
) -> list[dict[str, Any]]:
    """The organisation's stored events, oldest id first."""
    org_id = org.org_id if isinstance(org, Org) else org
    async with db() as session:
        rows = await session.execute(
            sa.text("SELECT * FROM metering.usage_events WHERE org_id = :org ORDER BY id"),
            {"org": org_id},
        )
        return [dict(row) for row in rows.mappings()]


async def database_state(db: async_sessionmaker[AsyncSession]) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table, to prove a request changed nothing."""
    state = {}
    async with db() as session:
        for table, rows in TABLES.items():  # fixed names, never input
            digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            query = sa.text(
                f"SELECT count(*), {digest} FROM metering.{table} AS t WHERE {rows}"  # noqa: S608
            )
            row = (await session.execute(query)).one()
            state[table] = (row[0], row[1])
    return state


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """A clear RFC 9457 problem: the status, a type, a title, a detail and the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 422 and body["type"] == PROBLEM_BASE + "validation-error":
        assert body["errors"], body
    return body
