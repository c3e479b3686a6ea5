"""Billing's subscription events set the organisation's plan tier, newest version wins."""

import asyncio
import json
import uuid

import nats
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from tollgate_keys.organizations.handlers import record_subscription
from tollgate_shared import api_key_format
from tollgate_shared.events.envelope import CloudEvent
from tollgate_shared.events.streams import ensure_stream, stream_for_service

from .conftest import outbox_events

UPDATED = "tollgate.keys.organization.updated"


def subscription_event(org_id: uuid.UUID, tier: str, version: int, **extra) -> CloudEvent:
    """A tollgate.billing.subscription.updated as billing publishes it (the fields keys reads,
    and some it does not)."""
    return CloudEvent(
        source="/tollgate/billing",
        type="tollgate.billing.subscription.updated",
        orgid=str(org_id),
        data={
            "organization_id": str(org_id),
            "plan": tier,
            "rate_limit_tier": tier,
            "status": "active",
            "version": version,
            **extra,
        },
    )


async def apply(db, event: CloudEvent) -> None:
    async with db() as session, session.begin():
        await record_subscription(session, event)


async def plan_of(db, org_id: uuid.UUID) -> tuple[str, int]:
    async with db() as session:
        row = (
            await session.execute(
                sa.text("SELECT plan, plan_version FROM keys.organizations WHERE id = :id"),
                {"id": org_id},
            )
        ).one()
    return row[0], row[1]


async def test_a_newer_subscription_sets_the_plan_and_announces_it(db, client, acme, gateway):
    await apply(db, subscription_event(acme.org_id, "pro", 2))
    assert await plan_of(db, acme.org_id) == ("pro", 2)
    [event] = await outbox_events(db, org_id=acme.org_id, type_=UPDATED)
    assert event["data"] == {
        "organization_id": str(acme.org_id),
        "name": "Acme",
        "plan": "pro",
        "suspended": False,
    }
    # Verified keys carry it, so the gateway rates the org's keys by the new plan.
    verified = await client.post(
        "/internal/v1/keys/verify",
        json={"secret_hash": api_key_format.hash_key(acme.first_key)},
        headers=gateway,
    )
    assert verified.json()["plan"] == "pro"
    organization = await client.get("/v1/organization", headers=acme.admin)
    assert organization.json()["plan"] == "pro"


async def test_older_and_repeated_versions_change_nothing(db, acme):
    await apply(db, subscription_event(acme.org_id, "enterprise", 5))
    await apply(db, subscription_event(acme.org_id, "pro", 4))  # late: an older version
    await apply(db, subscription_event(acme.org_id, "free", 5))  # same version again
    assert await plan_of(db, acme.org_id) == ("enterprise", 5)
    assert len(await outbox_events(db, org_id=acme.org_id, type_=UPDATED)) == 1


async def test_a_newer_version_with_the_same_plan_announces_nothing(db, acme):
    await apply(db, subscription_event(acme.org_id, "free", 3))
    assert await plan_of(db, acme.org_id) == ("free", 3)
    assert await outbox_events(db, org_id=acme.org_id, type_=UPDATED) == []


async def test_an_unknown_organisation_is_ignored(db):
    await apply(db, subscription_event(uuid.uuid4(), "pro", 2))


@pytest.mark.parametrize(
    "data",
    [
        {"rate_limit_tier": "pro", "version": 2},
        {"organization_id": "nope", "rate_limit_tier": "pro", "version": 2},
        {"organization_id": str(uuid.uuid4()), "rate_limit_tier": "", "version": 2},
        {"organization_id": str(uuid.uuid4()), "rate_limit_tier": "pro", "version": 0},
        {"organization_id": str(uuid.uuid4()), "rate_limit_tier": "pro"},
        {
            "organization_id": str(uuid.uuid4()),
            "rate_limit_tier": "pro",
            "version": 2,
            "status": "",
        },
        {"organization_id": str(uuid.uuid4()), "rate_limit_tier": "pro", "version": 2, "status": 1},
    ],
)
async def test_a_malformed_event_raises_for_the_dead_letters(db, data):
    event = CloudEvent(
        source="/tollgate/billing", type="tollgate.billing.subscription.updated", data=data
    )
    with pytest.raises(ValidationError):
        await apply(db, event)


async def test_the_consumer_follows_the_billing_stream(committed_keys_app, keys_settings):
    sessions = committed_keys_app.state.runtime.sessionmaker
    org_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        await session.execute(
            sa.text(
                "INSERT INTO keys.organizations (id, name, plan, created_at)"
                " VALUES (:id, 'Streamed', 'free', now())"
            ),
            {"id": org_id},
        )
    client = await nats.connect(keys_settings.nats_url)
    try:
        js = client.jetstream()
        await ensure_stream(js, stream_for_service("billing"))
        for tier, version in (("pro", 2), ("free", 1)):  # the older one arrives last
            event = subscription_event(org_id, tier, version)
            await js.publish(
                event.type,
                json.dumps(event.model_dump(mode="json", exclude_none=True)).encode(),
                headers={"Nats-Msg-Id": event.id},
            )
    finally:
        await client.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while await plan_of(sessions, org_id) != ("pro", 2):
        assert loop.time() < deadline, "the subscription event was not applied"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the older event, consumed meanwhile, changed nothing
    assert await plan_of(sessions, org_id) == ("pro", 2)
