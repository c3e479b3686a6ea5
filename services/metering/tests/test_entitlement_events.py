"""Entitlements with real commits: the service's own evaluator loop, its events on NATS, the plan
learnt from the keys service's events, and evaluators racing each other."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa

from tollgate_metering.entitlements.evaluator import evaluate_changes
from tollgate_shared.events.streams import ensure_stream, stream_for_service

from .conftest import Org, create_meter, event

DEADLINE_SECONDS = 20


@pytest.fixture
async def committing_client(committed_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metering") as http:
        yield http


@pytest.fixture
def operator(mint_identity):
    return mint_identity("user", principal_id=str(uuid.uuid4()), roles=("super_admin",))


@pytest.fixture
async def nats_client(nats_url) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


class Received:
    """Metering's entitlement and threshold events for one organisation, as NATS delivers them
    to a core subscriber (the way the gateway listens)."""

    def __init__(self, org: Org) -> None:
        self.org, self.events = org, []

    async def on_message(self, message) -> None:
        payload = json.loads(message.data)
        if payload.get("orgid") == str(self.org.org_id):
            self.events.append(payload)

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [event["data"] for event in self.events if event["type"] == event_type]

    async def until(self, predicate, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"never got {what}; got {self.events}")
            await asyncio.sleep(0.05)


async def test_states_and_thresholds_reach_nats_once(
    committing_client, nats_client, mint_identity, operator
) -> None:
    org = Org(uuid.uuid4(), mint_identity)
    received = Received(org)
    await nats_client.subscribe("tollgate.metering.>", cb=received.on_message)
    await create_meter(committing_client, org)
    response = await committing_client.put(
        f"/v1/admin/entitlements/{org.org_id}/llm_tokens", json={"limit": 1000}, headers=operator
    )
    assert response.status_code == 200, response.text

    # 9 batches of 120 tokens: 1,080 in the end, past the hard limit (no grace).
    for _ in range(9):
        response = await committing_client.post(
            "/v1/events", json=[event()], headers=org.key("write")
        )
        assert response.status_code == 200
    await received.until(
        lambda: any(
            state["status"] == "exceeded"
            for state in received.of("tollgate.metering.entitlement.updated")
        ),
        "the exceeded state",
    )
    await received.until(
        lambda: len(received.of("tollgate.metering.usage.threshold_reached")) == 3,
        "three thresholds",
    )
    states = received.of("tollgate.metering.entitlement.updated")
    versions = [state["version"] for state in states]
    assert versions == sorted(set(versions)), states
    assert states[-1]["used"] == 1080
    thresholds = received.of("tollgate.metering.usage.threshold_reached")
    assert sorted(t["threshold_percent"] for t in thresholds) == [50, 80, 100]
    # The gateway's snapshot agrees with the last event.
    service = mint_identity("service", principal_id="gateway")
    snapshot = (await committing_client.get("/internal/v1/entitlements", headers=service)).json()
    [mine] = [item for item in snapshot["items"] if item["organization_id"] == str(org.org_id)]
    assert mine == states[-1]


async def test_racing_evaluators_fire_each_threshold_once(
    committing_client, committed_app, mint_identity, operator
) -> None:
    """The service's loop and 4 more evaluators run while 20 clients send usage."""
    org = Org(uuid.uuid4(), mint_identity)
    await create_meter(committing_client, org)
    await committing_client.put(
        f"/v1/admin/entitlements/{org.org_id}/llm_tokens", json={"limit": 2400}, headers=operator
    )
    sessionmaker = committed_app.state.runtime.sessionmaker
    catalog = committed_app.state.plan_catalog
    sending = True

    async def evaluator() -> None:
        while sending:
            await evaluate_changes(sessionmaker, catalog=catalog)

    async def client() -> None:
        response = await committing_client.post(
            "/v1/events", json=[event() for _ in range(2)], headers=org.key("write")
        )
        assert response.status_code == 200

    evaluators = [asyncio.create_task(evaluator()) for _ in range(4)]
    await asyncio.gather(*(client() for _ in range(20)))  # 40 events, 4,800 tokens
    sending = False
    await asyncio.gather(*evaluators)
    await evaluate_changes(sessionmaker, catalog=catalog)

    async with sessionmaker() as session:
        crossings = (
            (
                await session.execute(
                    sa.text(
                        "SELECT percent FROM metering.threshold_crossings WHERE org_id = :org"
                        " ORDER BY percent"
                    ),
                    {"org": org.org_id},
                )
            )
            .scalars()
            .all()
        )
        events = await session.scalar(
            sa.text(
                "SELECT count(*) FROM metering.outbox WHERE payload ->> 'orgid' = :org"
                " AND subject = 'tollgate.metering.usage.threshold_reached'"
            ),
            {"org": str(org.org_id)},
        )
        state = (
            await session.execute(
                sa.text("SELECT used, status FROM metering.entitlement_states WHERE org_id = :org"),
                {"org": org.org_id},
            )
        ).one()
    assert list(crossings) == [50, 80, 100]
    assert events == 3
    assert (state.used, state.status) == (4800, "exceeded")


async def test_the_plan_comes_from_the_keys_services_events(
    committing_client, committed_app, nats_client, mint_identity
) -> None:
    org = Org(uuid.uuid4(), mint_identity)
    js = nats_client.jetstream()
    await ensure_stream(js, stream_for_service("keys"))
    event_ids = []
    for plan, day in (("pro", 2), ("free", 1)):  # the older fact arrives last and loses
        event_id = str(uuid.uuid4())
        event_ids.append(event_id)
        body = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/tollgate/keys",
            "type": "tollgate.keys.organization.updated",
            "time": datetime(2026, 11, day, tzinfo=UTC).isoformat(),
            "orgid": str(org.org_id),
            "data": {"organization_id": str(org.org_id), "name": "Acme", "plan": plan},
        }
        await js.publish(body["type"], json.dumps(body).encode(), headers={"Nats-Msg-Id": event_id})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    consumed = sa.text("SELECT count(*) FROM metering.inbox WHERE event_id = ANY(:ids)")
    while True:
        async with committed_app.state.runtime.sessionmaker() as session:
            if await session.scalar(consumed, {"ids": event_ids}) == 2:
                break
        assert loop.time() < deadline, "the organization events were not consumed"
        await asyncio.sleep(0.05)
    listing = (await committing_client.get("/v1/entitlements", headers=org.key("read"))).json()
    assert listing["plan"] == "pro"
    [quota] = listing["data"]
    assert (quota["limit"], quota["mode"]) == (5_000_000, "soft")
