"""Identical batches sent at once (a client's retries racing each other) are counted once, in
the events and in the rollups."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from .conftest import Org, create_meter, event

COPIES = 8


@pytest.fixture
async def committing_client(committed_app) -> AsyncIterator[httpx.AsyncClient]:
    """Requests commit for real, each on its own connection (a database of its own)."""
    transport = httpx.ASGITransport(app=committed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metering") as http:
        yield http


async def stored_count(committed_app, org: Org) -> int:
    async with committed_app.state.runtime.engine.connect() as connection:
        return int(
            await connection.scalar(
                sa.text("SELECT count(*) FROM metering.usage_events WHERE org_id = :org"),
                {"org": org.org_id},
            )
        )


async def summed_tokens(committing_client, org: Org) -> int:
    """This month's llm_tokens usage, as the rollups hold it (event() sends 120 tokens now)."""
    response = await committing_client.get("/v1/usage", headers=org.key("read"))
    return int(sum(row["value"] for row in response.json()["data"]))


async def test_concurrent_identical_batches_are_stored_once(
    committing_client, committed_app, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    await create_meter(committing_client, org)
    batch = [event() for _ in range(200)]
    responses = await asyncio.gather(
        *(
            committing_client.post("/v1/events", json=batch, headers=org.key("write"))
            for _ in range(COPIES)
        )
    )
    results = [response.json() for response in responses]
    assert all(response.status_code == 200 for response in responses), results
    assert sum(result["inserted"] for result in results) == 200
    assert sum(result["duplicates"] for result in results) == 200 * (COPIES - 1)
    assert await stored_count(committed_app, org) == 200
    assert await summed_tokens(committing_client, org) == 200 * 120


async def test_overlapping_batches_at_once_store_each_id_once(
    committing_client, committed_app, mint_identity
):
    org = Org(uuid.uuid4(), mint_identity)
    await create_meter(committing_client, org)
    events = [event() for _ in range(300)]
    # Each batch shares half its ids with the next one.
    batches = [events[start : start + 100] for start in range(0, 250, 50)]
    responses = await asyncio.gather(
        *(
            committing_client.post("/v1/events", json=batch, headers=org.key("write"))
            for batch in batches
        )
    )
    assert sum(response.json()["inserted"] for response in responses) == 300
    assert sum(response.json()["duplicates"] for response in responses) == 200
    assert await stored_count(committed_app, org) == 300
    # All 300 fall in the same rollup rows, which the batches updated at once.
    assert await summed_tokens(committing_client, org) == 300 * 120
