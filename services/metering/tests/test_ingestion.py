"""POST /v1/events: the good events of a request are stored once each, the bad ones reported."""

from datetime import UTC, datetime, timedelta

import pytest

from tollgate_metering.ingestion.schemas import TimeRules
from tollgate_metering.ingestion.service import ingest_events

from .conftest import ago, assert_problem, create_meter, event, stored_events


@pytest.fixture
async def tokens_meter(client, acme):
    return await create_meter(client, acme, key="llm_tokens", value_property="tokens")


async def send(client, org, body, headers=None):
    return await client.post("/v1/events", json=body, headers=headers or org.key("write"))


async def test_one_event_is_stored_as_sent(client, acme, db, tokens_meter):
    sent = event("evt-1", subject="customer-42", time="2026-11-20T10:00:00+02:00")
    response = await send(client, acme, sent)
    assert response.status_code == 200, response.text
    assert response.json() == {"inserted": 1, "duplicates": 0, "rejected": []}

    [row] = await stored_events(db, acme)
    assert row["id"] == "evt-1"
    assert row["type"] == "llm_tokens"
    assert row["subject"] == "customer-42"
    assert row["time"] == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert row["data"] == {"tokens": 120, "model": "small"}
    assert row["source"] == "api"
    assert abs(row["received_at"] - datetime.now(UTC)) < timedelta(seconds=30)


async def test_a_cloudevents_sdk_event_is_accepted_and_time_defaults_to_now(
    client, acme, db, tokens_meter
):
    sent = {
        "specversion": "1.0",
        "source": "https://api.example.com/llm",
        "datacontenttype": "application/json",
        "id": "sdk-1",
        "type": "llm_tokens",
        "subject": "customer-1",
        "data": {"tokens": 0},
    }
    response = await send(client, acme, sent, headers=acme.admin)
    assert response.json()["inserted"] == 1, response.text
    [row] = await stored_events(db, acme)
    assert abs(row["time"] - datetime.now(UTC)) < timedelta(seconds=30)


async def test_a_batch_is_stored_whole(client, acme, db, tokens_meter):
    batch = [event(f"b-{number}", data={"tokens": number}) for number in range(50)]
    response = await send(client, acme, batch)
    assert response.json() == {"inserted": 50, "duplicates": 0, "rejected": []}
    rows = await stored_events(db, acme)
    assert sorted(row["data"]["tokens"] for row in rows) == list(range(50))


async def test_the_built_in_meter_is_fed_by_the_gateway_only(client, acme, db):
    response = await send(client, acme, event("call-1", type="api_requests", data={}))
    assert response.status_code == 422, response.text
    [rejected] = response.json()["rejected"]
    assert rejected["errors"][0]["type"] == "built_in_meter"
    assert await stored_events(db, acme) == []


async def test_a_mixed_batch_stores_the_good_and_reports_the_bad_by_index(
    client, acme, db, tokens_meter
):
    batch = [
        event("good-0"),
        event("bad-1", data={"tokens": -5}),
        event("good-2"),
        event("bad-3", type="no_such_meter"),
        {"type": "llm_tokens", "subject": "c"},
        "not an event",
        event("good-6"),
    ]
    response = await send(client, acme, batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["duplicates"]) == (3, 0)
    rejected = {item["index"]: item for item in body["rejected"]}
    assert sorted(rejected) == [1, 3, 4, 5]
    assert rejected[1]["id"] == "bad-1"
    assert rejected[1]["errors"] == [
        {"loc": ["data", "tokens"], "message": "must be at least 0", "type": "greater_than_equal"}
    ]
    assert rejected[3]["errors"][0]["loc"] == ["type"]
    assert rejected[3]["errors"][0]["type"] == "unknown_meter"
    assert rejected[4]["id"] is None
    assert rejected[4]["errors"][0]["loc"] == ["id"]
    assert rejected[4]["errors"][0]["type"] == "missing"
    assert rejected[5]["errors"][0]["type"] == "model_type"
    assert [row["id"] for row in await stored_events(db, acme)] == ["good-0", "good-2", "good-6"]


async def test_a_repeated_id_is_counted_once_within_a_batch_and_across_requests(
    client, acme, globex, db, tokens_meter
):
    first = await send(client, acme, [event("same"), event("same", subject="other")])
    assert first.json() == {"inserted": 1, "duplicates": 1, "rejected": []}
    again = await send(client, acme, [event("same"), event("new")])
    assert again.json() == {"inserted": 1, "duplicates": 1, "rejected": []}
    [new, same] = await stored_events(db, acme)  # by id
    assert (new["id"], same["id"]) == ("new", "same")
    assert same["subject"] == "customer-1"  # the first of the batch won

    # Ids are the organisation's own: another one may use the same.
    await create_meter(client, globex)
    elsewhere = await send(client, globex, event("same"))
    assert elsewhere.json()["inserted"] == 1


async def test_a_rolled_back_write_leaves_no_trace_of_its_ids(client, acme, db, tokens_meter):
    """The id check and the write are one statement in one transaction: a failed request does
    not make its retry look like a duplicate."""
    rules = TimeRules(late=timedelta(days=35), future_tolerance=timedelta(minutes=5))
    async with db() as session:
        result = await ingest_events(
            session, org_id=acme.org_id, body=[event("retry-me")], rules=rules
        )
        assert result.inserted == 1
        await session.rollback()
    assert await stored_events(db, acme) == []
    retried = await send(client, acme, event("retry-me"))
    assert retried.json() == {"inserted": 1, "duplicates": 0, "rejected": []}


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (timedelta(days=34), True),
        (timedelta(days=36), False),
        (timedelta(minutes=-4), True),
        (timedelta(minutes=-6), False),
    ],
    ids=["34 days old", "36 days old", "4 minutes ahead", "6 minutes ahead"],
)
async def test_late_and_future_times(client, acme, db, tokens_meter, age, accepted):
    timed = event("timed", time=(datetime.now(UTC) - age).isoformat())
    response = await send(client, acme, [event("on-time"), timed])
    body = response.json()
    assert body["inserted"] == (2 if accepted else 1), body
    stored = {row["id"] for row in await stored_events(db, acme)}
    assert ("timed" in stored) is accepted
    if not accepted:
        [error] = body["rejected"][0]["errors"]
        assert error["loc"] == ["time"]
        assert error["type"] in ("time_too_old", "time_in_future")


async def test_time_limits_follow_the_settings(client, acme, db, tokens_meter, metering_app):
    settings = metering_app.state.settings
    metering_app.state.settings = settings.model_copy(
        update={"late_event_days": 2, "future_tolerance_seconds": 0}
    )
    try:
        response = await send(
            client,
            acme,
            [
                event("1d", time=ago(days=1)),
                event("3d", time=ago(days=3)),
                event("ahead", time=ago(seconds=-30)),
            ],
        )
    finally:
        metering_app.state.settings = settings
    body = response.json()
    assert body["inserted"] == 1
    assert [item["index"] for item in body["rejected"]] == [1, 2]


@pytest.mark.parametrize(
    ("aggregation", "value"),
    [("SUM", 0), ("SUM", 2.5), ("MAX", 10**15), ("MIN", 1e15), ("LATEST", 7)],
)
async def test_numeric_meters_take_finite_numbers_from_zero_to_1e15(
    client, acme, db, aggregation, value
):
    await create_meter(client, acme, key="gauge", aggregation=aggregation, value_property="v")
    response = await send(client, acme, event(type="gauge", data={"v": value}))
    assert response.json()["inserted"] == 1, response.text
    [row] = await stored_events(db, acme)
    assert row["data"] == {"v": value}


@pytest.mark.parametrize("value", ["user-7", 7, 7.5])
async def test_unique_count_meters_take_strings_and_numbers(client, acme, db, value):
    await create_meter(client, acme, key="users", aggregation="UNIQUE_COUNT", value_property="u")
    response = await send(client, acme, event(type="users", data={"u": value}))
    assert response.json()["inserted"] == 1, response.text


async def test_data_may_nest_32_levels_and_is_given_back_whole(client, acme, db):
    data = {"levels": [[[["deep"]]]]}
    for _ in range(27):
        data = {"inner": data}
    await create_meter(client, acme, key="traces", aggregation="COUNT")
    response = await send(client, acme, event("deep", type="traces", data=data))
    assert response.json()["inserted"] == 1, response.text
    listed = await client.get("/v1/events", headers=acme.admin)
    assert listed.json()["items"][0]["data"] == data


async def test_count_meters_need_no_data(client, acme, db):
    await create_meter(client, acme, key="traces", aggregation="COUNT")
    sent = event("t-1", type="traces")
    del sent["data"]
    assert (await send(client, acme, sent)).json()["inserted"] == 1
    [row] = await stored_events(db, acme)
    assert row["data"] == {}


async def test_writers_are_write_keys_and_org_admins(client, acme, db, tokens_meter):
    for writer in (acme.key("write"), acme.key("admin"), acme.admin):
        response = await send(client, acme, event(), headers=writer)
        assert response.json()["inserted"] == 1, response.text
    for reader in (acme.key("read"), acme.user("member"), acme.user("billing_admin")):
        response = await send(client, acme, event(), headers=reader)
        assert_problem(response, 403, "forbidden")
    assert len(await stored_events(db, acme)) == 3


async def test_the_openapi_document_describes_the_event_body(client):
    spec = (await client.get("/openapi.json")).json()
    schema = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    single, batch = schema["schema"]["oneOf"]
    assert {"id", "type", "subject"} <= set(single["required"])
    assert batch["maxItems"] == 1000
