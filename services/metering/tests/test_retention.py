"""Raw events, and the usage consumer's inbox rows, are forgotten once past retention."""

import uuid
from datetime import timedelta

import sqlalchemy as sa

from tollgate_metering.retention import forget_expired

from .conftest import create_meter, event, stored_events

RETENTION = timedelta(days=35)


async def received_ago(db, org, event_id: str, days: float) -> None:
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE metering.usage_events SET received_at = now() - make_interval(days => :d)"
                " WHERE org_id = :org AND id = :id"
            ),
            {"d": days, "org": org.org_id, "id": event_id},
        )


async def test_events_received_before_retention_are_deleted_and_younger_ones_kept(client, acme, db):
    await create_meter(client, acme)
    batch = [event("old"), event("almost"), event("new")]
    assert (await client.post("/v1/events", json=batch, headers=acme.admin)).json()["inserted"] == 3
    await received_ago(db, acme, "old", 36)
    await received_ago(db, acme, "almost", 34)

    deleted = await forget_expired(db, retention=RETENTION, consumer="metering-usage")
    assert deleted >= 1
    assert [row["id"] for row in await stored_events(db, acme)] == ["almost", "new"]

    # Still known, so still deduplicated; the forgotten one could be stored again.
    again = await client.post("/v1/events", json=[event("almost")], headers=acme.admin)
    assert again.json()["duplicates"] == 1


async def test_only_the_usage_consumers_old_inbox_rows_are_deleted(db):
    consumer, other = f"usage-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    rows = [
        (consumer, "old", 40),
        (consumer, "recent", 1),
        (other, "old", 40),
    ]
    async with db() as session, session.begin():
        for name, event_id, days in rows:
            await session.execute(
                sa.text(
                    "INSERT INTO metering.inbox (consumer, event_id, subject, processed_at)"
                    " VALUES (:consumer, :id, 'x', now() - make_interval(days => :d))"
                ),
                {"consumer": name, "id": event_id, "d": days},
            )
    await forget_expired(db, retention=RETENTION, consumer=consumer)
    async with db() as session:
        left = await session.execute(
            sa.text(
                "SELECT consumer, event_id FROM metering.inbox"
                " WHERE consumer IN (:a, :b) ORDER BY consumer, event_id"
            ),
            {"a": consumer, "b": other},
        )
        assert sorted(map(tuple, left)) == sorted([(consumer, "recent"), (other, "old")])
