"""The gateway's usage events, consumed from JetStream, become api_requests events once each."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from tollgate_metering.gateway_usage.handlers import USAGE_RECORDED, record_gateway_usage
from tollgate_shared.events.envelope import CloudEvent

from .conftest import stored_events

SKIPPED = "tollgate_metering_gateway_usage_skipped_total"


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[nats.js.JetStreamContext]:
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


def usage_event(org_id: uuid.UUID | None, **data) -> dict:
    """A usage event as the gateway publishes it (docs/events.md)."""
    request_id = uuid.uuid4().hex
    received = datetime.now(UTC) - timedelta(milliseconds=3)
    org = str(org_id) if org_id else None
    body = {
        "specversion": "1.0",
        "id": request_id,
        "source": "/tollgate/gateway",
        "type": USAGE_RECORDED,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "request_id": request_id,
            "organization_id": org,
            "principal_type": "key",
            "key_id": str(uuid.uuid4()),
            "user_id": None,
            "route": "demo",
            "meter": "api_requests",
            "method": "GET",
            "status": 200,
            "latency_ms": 2.417,
            "request_bytes": 0,
            "response_bytes": 71,
            "timestamp": received.isoformat(),
            **data,
        },
    }
    if org:
        body["orgid"] = org
    return body


async def publish(js, event: dict, message_id: str | None = None):
    headers = {"Nats-Msg-Id": message_id or event["id"]}
    return await js.publish(USAGE_RECORDED, json.dumps(event).encode(), headers=headers)


async def until_consumed(db, consumer: str, event_id: str) -> None:
    """Wait for the consumer's inbox to hold the event (it commits the effects at once)."""
    query = sa.text(
        "SELECT count(*) FROM metering.inbox WHERE consumer = :consumer AND event_id = :id"
    )
    for _ in range(200):
        async with db() as session:
            if await session.scalar(query, {"consumer": consumer, "id": event_id}):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} was not consumed")


async def test_a_usage_event_becomes_one_api_requests_event(js, db, acme, metering_settings):
    sent = usage_event(acme.org_id, status=503, route="search")
    await publish(js, sent)
    await until_consumed(db, metering_settings.usage_consumer_name, sent["id"])

    [row] = await stored_events(db, acme)
    assert row["id"] == sent["id"]
    assert row["type"] == "api_requests"
    assert row["subject"] == str(acme.org_id)
    assert row["time"] == datetime.fromisoformat(sent["data"]["timestamp"])
    assert row["data"] == sent["data"]
    assert row["source"] == "gateway"


async def test_the_same_usage_event_delivered_twice_is_stored_once(js, db, acme, metering_settings):
    sent = usage_event(acme.org_id)
    first = await publish(js, sent)
    same_id = await publish(js, sent)
    # A copy JetStream does not recognise (after its 10-minute window, or another message id).
    other_id = await publish(js, sent, message_id=uuid.uuid4().hex)
    assert (bool(first.duplicate), same_id.duplicate, bool(other_id.duplicate)) == (
        False,
        True,
        False,
    )
    later = usage_event(acme.org_id)
    await publish(js, later)
    # The consumer handles the stream in order: once the later event is in, both copies were.
    await until_consumed(db, metering_settings.usage_consumer_name, later["id"])

    rows = await stored_events(db, acme)
    assert sorted(row["id"] for row in rows) == sorted([sent["id"], later["id"]])


async def test_an_event_without_organisation_is_skipped(js, db, metering_settings):
    skipped_before = REGISTRY.get_sample_value(SKIPPED, {"reason": "no_organization"}) or 0
    sent = usage_event(None, principal_type="user", key_id=None, user_id=str(uuid.uuid4()))
    await publish(js, sent)
    await until_consumed(db, metering_settings.usage_consumer_name, sent["id"])

    async with db() as session:
        stored = await session.scalar(
            sa.text("SELECT count(*) FROM metering.usage_events WHERE id = :id"),
            {"id": sent["id"]},
        )
    assert stored == 0
    assert REGISTRY.get_sample_value(SKIPPED, {"reason": "no_organization"}) >= skipped_before + 1


async def test_an_event_seen_again_after_the_inbox_forgot_it_still_counts_once(db, acme):
    event = CloudEvent.model_validate(usage_event(acme.org_id))
    for _ in range(2):
        async with db() as session, session.begin():
            await record_gateway_usage(session, event)
    assert [row["id"] for row in await stored_events(db, acme)] == [event.id]
