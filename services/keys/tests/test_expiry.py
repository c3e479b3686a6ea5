"""Expiry announcements: tollgate.keys.key.expired once per expired key or rotated-out secret."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from nats.js.api import ConsumerConfig, DeliverPolicy

from tollgate_keys.api_keys.schemas import ApiKeyCreate
from tollgate_keys.api_keys.service import announce_expiries, create_key, rotate_key
from tollgate_keys.organizations.service import create_organization
from tollgate_shared.events.tables import outbox

from .conftest import outbox_events

EXPIRED = "tollgate.keys.key.expired"


async def expire_key_now(db, key_id) -> None:
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE keys.api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": key_id},
        )


async def test_announce_expiries_publishes_once_per_expired_key(acme, db):
    await expire_key_now(db, acme.first_key_id)
    async with db() as session, session.begin():
        assert await announce_expiries(session) >= 1
    async with db() as session, session.begin():
        await announce_expiries(session)

    events = await outbox_events(db, org_id=acme.org_id, type_=EXPIRED)
    assert len(events) == 1
    assert events[0]["orgid"] == str(acme.org_id)
    assert events[0]["data"] == {
        "key_id": str(acme.first_key_id),
        "organization_id": str(acme.org_id),
        "name": "Default key",
        "environment": "live",
        "scopes": ["read", "write"],
        "rate_limit": None,
        "expires_at": events[0]["data"]["expires_at"],
        "reason": "key_expired",
    }
    assert datetime.fromisoformat(events[0]["data"]["expires_at"]) < datetime.now(UTC)


async def test_a_rotated_out_secret_is_announced_once_with_its_id(client, acme, db):
    rotated = await client.post(
        f"/v1/keys/{acme.first_key_id}/rotate", json={"grace_seconds": 0}, headers=acme.admin
    )
    assert rotated.status_code == 200
    async with db() as session, session.begin():
        await announce_expiries(session)
        await announce_expiries(session)
        old_secret_id = (
            await session.execute(
                sa.text(
                    "SELECT id FROM keys.api_key_secrets WHERE key_id = :id"
                    " AND expires_at IS NOT NULL"
                ),
                {"id": acme.first_key_id},
            )
        ).scalar_one()

    events = await outbox_events(db, org_id=acme.org_id, type_=EXPIRED)
    assert [(e["data"]["reason"], e["data"]["secret_id"]) for e in events] == [
        ("previous_secret_expired", str(old_secret_id))
    ]
    assert events[0]["data"]["key_id"] == str(acme.first_key_id)


async def test_revoked_keys_are_not_announced_as_expired(client, acme, db):
    await client.delete(f"/v1/keys/{acme.first_key_id}", headers=acme.admin)
    await expire_key_now(db, acme.first_key_id)
    async with db() as session, session.begin():
        await announce_expiries(session)
    assert await outbox_events(db, org_id=acme.org_id, type_=EXPIRED) == []


async def test_a_new_expiry_after_an_announced_one_is_announced_again(client, acme, db):
    await expire_key_now(db, acme.first_key_id)
    async with db() as session, session.begin():
        await announce_expiries(session)
    # The admin brings the key back with a new expiry, which passes in turn.
    extended = await client.patch(
        f"/v1/keys/{acme.first_key_id}",
        json={"expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        headers=acme.admin,
    )
    assert extended.status_code == 200
    assert extended.json()["status"] == "active"
    await expire_key_now(db, acme.first_key_id)
    async with db() as session, session.begin():
        await announce_expiries(session)
    assert len(await outbox_events(db, org_id=acme.org_id, type_=EXPIRED)) == 2


async def _published_expiries(sessionmaker, org_id: uuid.UUID) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            (
                await session.execute(
                    sa.select(outbox.c.id, outbox.c.payload, outbox.c.published_at).where(
                        outbox.c.subject == EXPIRED,
                        outbox.c.payload["orgid"].astext == str(org_id),
                    )
                )
            ).all()
        )


async def _stream_messages(js, org_id: uuid.UUID) -> list[Any]:
    """Every key.expired message of this organisation in the KEYS stream."""
    subscription = await js.pull_subscribe(
        EXPIRED, stream="KEYS", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    try:
        pending = (await subscription.consumer_info()).num_pending
        messages = []
        while len(messages) < pending:
            messages += await subscription.fetch(min(pending - len(messages), 256), timeout=5)
        for message in messages:
            await message.ack()
        return [
            message for message in messages if json.loads(message.data).get("orgid") == str(org_id)
        ]
    finally:
        await subscription.unsubscribe()


async def test_the_background_sweeper_publishes_each_expiry_exactly_once(committed_keys_app):
    """Real commits: the sweeper and the outbox relay run in the app; NATS gets one message each."""
    runtime = committed_keys_app.state.runtime
    sessionmaker = runtime.sessionmaker  # committed data: the sweeper must see it
    async with sessionmaker() as session, session.begin():
        organization = await create_organization(session, name="Expiring", created_by=uuid.uuid4())
        org_id = organization.id
        expiring, _ = await create_key(
            session, org_id=org_id, created_by="test", data=ApiKeyCreate(name="expiring")
        )
        rotated, _ = await create_key(
            session, org_id=org_id, created_by="test", data=ApiKeyCreate(name="rotated")
        )
        await rotate_key(session, key=rotated, grace=timedelta(0))
        expiring.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(expiring)
    for _ in range(300):  # the sweeper runs every 0.2 s here; the relay wakes on NOTIFY
        rows = await _published_expiries(sessionmaker, org_id)
        if len(rows) >= 2 and all(row.published_at is not None for row in rows):
            break
        await asyncio.sleep(0.1)
    assert sorted(
        (row.payload["data"]["key_id"], row.payload["data"]["reason"]) for row in rows
    ) == sorted([(str(expiring.id), "key_expired"), (str(rotated.id), "previous_secret_expired")])

    messages = await _stream_messages(runtime.js, org_id)
    assert sorted(message.headers["Nats-Msg-Id"] for message in messages) == sorted(
        str(row.id) for row in rows
    )

    # Sweeping again finds nothing left to announce for these keys.
    async with sessionmaker() as session:
        await announce_expiries(session)
        await session.flush()
        again = await session.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.subject == EXPIRED, outbox.c.payload["orgid"].astext == str(org_id))
        )
        assert again.scalar_one() == 2
        await session.rollback()
