"""GET /v1/usage: this calendar month's usage per meter and subject, from rollups."""

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tollgate_metering.ingestion.repository import UsageEventRepository
from tollgate_metering.ingestion.schemas import NewEvent
from tollgate_metering.retention import forget_expired
from tollgate_metering.usage.windows import month_start

from .conftest import assert_problem, create_meter


async def store(db, org, *events: tuple[str, str, datetime, dict]) -> None:
    """Store (type, subject, time, data) events directly, at times the API may refuse."""
    async with db() as session, session.begin():
        await UsageEventRepository(session).insert_new(
            org_id=org.org_id,
            source="api",
            events=[
                NewEvent(
                    id=f"e{number}",
                    type=type_,
                    subject=subject,
                    time=moment,
                    data_json=json.dumps(data),
                )
                for number, (type_, subject, moment, data) in enumerate(events)
            ],
        )


async def summary(client, org, **params):
    response = await client.get("/v1/usage", params=params, headers=org.user())
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_meter_and_subject_of_this_month(client, acme, globex, db):
    await create_meter(client, acme, key="llm_tokens", value_property="tokens")
    await create_meter(client, acme, key="seats", aggregation="UNIQUE_COUNT", value_property="user")
    period_start = month_start(datetime.now(UTC))
    inside = period_start + timedelta(minutes=1)
    await store(
        db,
        acme,
        ("llm_tokens", "c1", inside, {"tokens": 5}),
        ("llm_tokens", "c1", inside + timedelta(hours=1), {"tokens": 7.5}),
        ("llm_tokens", "c2", inside, {"tokens": 1}),
        ("llm_tokens", "c1", period_start - timedelta(minutes=1), {"tokens": 1000}),  # last month
        ("seats", "c1", inside, {"user": "ann"}),
        ("seats", "c1", inside + timedelta(days=1), {"user": "ann"}),
        ("seats", "c1", inside + timedelta(days=1), {"user": "bob"}),
        ("api_requests", "c1", inside, {"route": "demo"}),
    )
    body = await summary(client, acme)
    assert body["period_start"] == period_start.isoformat().replace("+00:00", "Z")
    assert [
        (row["meter"], row["aggregation"], row["subject"], row["value"]) for row in body["data"]
    ] == [
        ("api_requests", "COUNT", "c1", 1),
        ("llm_tokens", "SUM", "c1", 12.5),
        ("llm_tokens", "SUM", "c2", 1),
        ("seats", "UNIQUE_COUNT", "c1", 2),
    ]
    only_c2 = await summary(client, acme, subject="c2")
    assert [(row["meter"], row["value"]) for row in only_c2["data"]] == [("llm_tokens", 1)]
    assert (await summary(client, globex))["data"] == []


async def test_the_summary_needs_an_organisation_member_or_read_key(client, acme):
    response = await client.get("/v1/usage", headers=acme.key("write"))
    assert_problem(response, 403)
    bad = await client.get("/v1/usage", params={"subject": ""}, headers=acme.user())
    assert_problem(bad, 422, "validation-error")


async def test_the_raw_event_sweep_leaves_rollups_alone(client, acme, db):
    await create_meter(client, acme, key="llm_tokens", value_property="tokens")
    inside = month_start(datetime.now(UTC)) + timedelta(minutes=1)
    await store(db, acme, ("llm_tokens", "c1", inside, {"tokens": 3}))
    before = await summary(client, acme)
    async with db() as session, session.begin():
        await session.execute(
            sa.text(
                "UPDATE metering.usage_events SET received_at = now() - interval '40 days'"
                " WHERE org_id = :org"
            ),
            {"org": acme.org_id},
        )
    await forget_expired(db, retention=timedelta(days=35), consumer="metering-usage")
    async with db() as session:
        left = await session.scalar(
            sa.text("SELECT count(*) FROM metering.usage_events WHERE org_id = :org"),
            {"org": acme.org_id},
        )
    assert left == 0
    assert before["data"] == [
        {"meter": "llm_tokens", "aggregation": "SUM", "subject": "c1", "value": 3}
    ]
    assert await summary(client, acme) == before
