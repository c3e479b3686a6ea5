"""GET /v1/usage: this calendar month's usage per meter and subject, from rollups."""

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tollgate_metering.ingestion.repository import UsageEventRepository
from tollgate_metering.ingestion.schemas import NewEvent
from tollgate_metering.retention import forget_expired
from tollgate_metering.usage.windows import month_start
from tollgate_shared.identity import (
    IDENTITY_HEADER,
    generate_keypair,
    service_signer,
    service_verifier,
)

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


# GET /internal/v1/usage: what billing invoices for one organisation and period.


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def period_usage(client, headers, org, time_from: datetime, time_to: datetime):
    return await client.get(
        "/internal/v1/usage",
        params={"organization_id": str(org.org_id), "from": _iso(time_from), "to": _iso(time_to)},
        headers=headers,
    )


async def test_period_usage_is_each_meter_over_exactly_the_period(
    client, acme, globex, db, mint_identity
):
    await create_meter(client, acme, key="llm_tokens", value_property="tokens")
    start = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
    end = datetime(2026, 4, 14, 10, 30, tzinfo=UTC)
    await store(
        db,
        acme,
        ("llm_tokens", "c1", start, {"tokens": "0.000001"}),  # first instant: in
        ("llm_tokens", "c2", start + timedelta(days=3, seconds=7), {"tokens": 12}),
        ("llm_tokens", "c1", end - timedelta(seconds=1), {"tokens": 100}),  # last second: in
        ("llm_tokens", "c1", end, {"tokens": 1000}),  # the next period's first instant
        ("llm_tokens", "c1", start - timedelta(seconds=1), {"tokens": 1000}),  # the last period
        ("api_requests", "k1", start + timedelta(days=1), {"meter": "api_requests"}),
        ("api_requests", "k1", start + timedelta(days=1), {"meter": "api_requests"}),
        # Tollgate's own endpoints and refused calls are not billed, as quotas do not count them.
        ("api_requests", "k1", start + timedelta(days=1), {"route": "usage"}),
        ("api_requests", "k1", start + timedelta(days=2), {"meter": "api_requests", "status": 429}),
    )
    await store(db, globex, ("llm_tokens", "c1", start, {"tokens": 5}))
    service = mint_identity("service", principal_id="gateway")
    response = await period_usage(client, service, acme, start, end)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organization_id"] == str(acme.org_id)
    assert (body["from"], body["to"]) == (_iso(start), _iso(end))
    assert {row["meter"]: row["value"] for row in body["data"]} == {
        "api_requests": "2",
        "llm_tokens": "112.000001",
    }
    # An organisation without usage has every meter at zero.
    other = (await period_usage(client, service, globex, end, end + timedelta(days=1))).json()
    assert {row["value"] for row in other["data"]} == {"0"}


async def test_period_usage_accepts_billings_own_token(client, acme, metering_app):
    private, public = generate_keypair()
    configured = metering_app.state.billing_identity_verifier
    metering_app.state.billing_identity_verifier = service_verifier(
        public, caller="billing", callee="metering"
    )
    try:
        await _billing_token_reads_usage(client, acme, private)
    finally:
        metering_app.state.billing_identity_verifier = configured


async def _billing_token_reads_usage(client, acme, private: str) -> None:
    billing = service_signer(private, caller="billing", callee="metering")
    token = {IDENTITY_HEADER: billing.sign({"ptype": "service", "sub": "billing"})}
    start = datetime(2026, 3, 1, tzinfo=UTC)
    response = await period_usage(client, token, acme, start, start + timedelta(days=31))
    assert response.status_code == 200, response.text
    # A token billing minted for another audience, or a user token from billing, is refused.
    elsewhere = service_signer(private, caller="billing", callee="keys")
    wrong_audience = {IDENTITY_HEADER: elsewhere.sign({"ptype": "service", "sub": "billing"})}
    assert_problem(await period_usage(client, wrong_audience, acme, start, start), 401)
    as_user = {
        IDENTITY_HEADER: billing.sign(
            {"ptype": "user", "sub": str(acme.org_id), "org": str(acme.org_id)}
        )
    }
    assert_problem(await period_usage(client, as_user, acme, start, start), 401)


async def test_period_usage_is_for_services_only_and_checks_its_input(client, acme, mint_identity):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=31)
    assert_problem(await period_usage(client, acme.user("org_admin"), acme, start, end), 403)
    assert_problem(await period_usage(client, {}, acme, start, end), 401)
    service = mint_identity("service", principal_id="gateway")
    for time_from, time_to, field in (
        (start + timedelta(seconds=1), end, "from"),
        (start, end, None),
        (end, start, "to"),
        (start, start + timedelta(days=401), "to"),
    ):
        response = await period_usage(client, service, acme, time_from, time_to)
        if field is None:
            assert response.status_code == 200
            continue
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["loc"] == ["query", field]
    missing = await client.get("/internal/v1/usage", params={"from": _iso(start)}, headers=service)
    assert_problem(missing, 422, "validation-error")
    bad_org = await client.get(
        "/internal/v1/usage",
        params={"organization_id": "nope", "from": _iso(start), "to": _iso(end)},
        headers=service,
    )
    assert_problem(bad_org, 422, "validation-error")
