"""GET /v1/meters/{key}/usage: windows in the caller's time zone, filters, groups, bad input."""

import json
from datetime import datetime

import pytest

from tollgate_metering.ingestion.repository import UsageEventRepository
from tollgate_metering.ingestion.schemas import NewEvent
from tollgate_metering.usage.windows import Window, window_boundaries

from .conftest import assert_problem, create_meter, database_state


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def store(db, org, *events: tuple[str, str, dict], type_="llm_tokens", source="api"):
    """Store (time, subject, data) events the way ingestion does, at any past time: the API's
    late-event window would refuse these fixed dates."""
    async with db() as session, session.begin():
        await UsageEventRepository(session).insert_new(
            org_id=org.org_id,
            source=source,
            events=[
                NewEvent(
                    id=f"{type_}-{number}",
                    type=type_,
                    subject=subject,
                    time=at(moment),
                    data_json=json.dumps(data),
                )
                for number, (moment, subject, data) in enumerate(events)
            ],
        )


async def usage(client, org, key="llm_tokens", **params):
    response = await client.get(f"/v1/meters/{key}/usage", params=params, headers=org.key("read"))
    assert response.status_code == 200, response.text
    return response.json()


def windows(body) -> list[tuple[str, str, float]]:
    return [(row["window_start"], row["window_end"], row["value"]) for row in body["data"]]


@pytest.fixture
async def tokens(client, acme):
    return await create_meter(client, acme, group_by=["model", "region"])


async def test_day_windows_follow_the_time_zone(client, acme, db, tokens):
    # 23:59 and 00:00 in Kolkata (+05:30), both on 10 June in UTC.
    await store(
        db,
        acme,
        ("2025-06-10T18:29:00Z", "c1", {"tokens": 1}),
        ("2025-06-10T18:30:00Z", "c1", {"tokens": 10}),
    )
    span = {"from": "2025-06-09T00:00:00+05:30", "to": "2025-06-12T00:00:00+05:30"}
    kolkata = await usage(client, acme, window="day", tz="Asia/Kolkata", **span)
    assert kolkata["tz"] == "Asia/Kolkata"
    assert windows(kolkata) == [
        ("2025-06-09T18:30:00Z", "2025-06-10T18:30:00Z", 1),
        ("2025-06-10T18:30:00Z", "2025-06-11T18:30:00Z", 10),
    ]
    # In UTC the same events fall on one day; the first window is cut at `from`.
    utc = await usage(client, acme, window="day", **span)
    assert windows(utc) == [("2025-06-10T00:00:00Z", "2025-06-11T00:00:00Z", 11)]
    hours = await usage(client, acme, window="hour", tz="Asia/Kolkata", **span)
    assert windows(hours) == [
        ("2025-06-10T17:30:00Z", "2025-06-10T18:30:00Z", 1),
        ("2025-06-10T18:30:00Z", "2025-06-10T19:30:00Z", 10),
    ]


async def test_new_york_days_and_hours_around_the_end_of_daylight_saving(client, acme, db, tokens):
    # 2 November 2025 lasts 25 hours in New York: 04:00Z (00:00 EDT) to 05:00Z next day.
    await store(
        db,
        acme,
        ("2025-11-02T04:30:00Z", "c1", {"tokens": 1}),  # 00:30 EDT
        ("2025-11-02T05:30:00Z", "c1", {"tokens": 2}),  # the first 01:30 (EDT)
        ("2025-11-02T06:30:00Z", "c1", {"tokens": 4}),  # the second 01:30 (EST)
        ("2025-11-03T04:30:00Z", "c1", {"tokens": 8}),  # 23:30 EST, still 2 November
        ("2025-11-03T05:00:00Z", "c1", {"tokens": 16}),  # 00:00 EST, 3 November
    )
    days = await usage(
        client,
        acme,
        window="day",
        tz="America/New_York",
        **{"from": "2025-11-01T00:00:00-04:00", "to": "2025-11-04T00:00:00-05:00"},
    )
    assert windows(days) == [
        ("2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z", 15),
        ("2025-11-03T05:00:00Z", "2025-11-04T05:00:00Z", 16),
    ]
    hours = await usage(
        client,
        acme,
        window="hour",
        tz="America/New_York",
        **{"from": "2025-11-02T04:00:00Z", "to": "2025-11-02T08:00:00Z"},
    )
    # The repeated 01:00 hour is two windows of one hour each.
    assert windows(hours) == [
        ("2025-11-02T04:00:00Z", "2025-11-02T05:00:00Z", 1),
        ("2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", 2),
        ("2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z", 4),
    ]


def test_a_spring_forward_day_is_23_hours_and_a_skipped_midnight_starts_the_day_at_the_change():
    from zoneinfo import ZoneInfo

    new_york = window_boundaries(
        start=at("2026-03-08T05:00:00Z"),
        end=at("2026-03-10T04:00:00Z"),
        window=Window.DAY,
        zone=ZoneInfo("America/New_York"),
    )
    assert new_york == [
        at("2026-03-08T05:00:00Z"),
        at("2026-03-09T04:00:00Z"),
        at("2026-03-10T04:00:00Z"),
    ]
    # Santiago skipped 00:00 on 7 September 2025 (clocks went from 24:00 -04 to 01:00 -03).
    santiago = window_boundaries(
        start=at("2025-09-06T04:00:00Z"),
        end=at("2025-09-08T03:00:00Z"),
        window=Window.DAY,
        zone=ZoneInfo("America/Santiago"),
    )
    assert santiago == [
        at("2025-09-06T04:00:00Z"),
        at("2025-09-07T04:00:00Z"),
        at("2025-09-08T03:00:00Z"),
    ]


async def test_month_windows_in_a_time_zone_with_partial_ends(client, acme, db, tokens):
    await store(
        db,
        acme,
        ("2025-01-15T12:00:00Z", "c1", {"tokens": 1}),
        ("2025-02-01T04:59:00Z", "c1", {"tokens": 2}),  # 31 January, 23:59 EST
        ("2025-02-01T05:00:00Z", "c1", {"tokens": 4}),  # 1 February, 00:00 EST
        ("2025-03-20T12:00:00Z", "c1", {"tokens": 8}),  # after `to`
    )
    body = await usage(
        client,
        acme,
        window="month",
        tz="America/New_York",
        **{"from": "2025-01-10T00:00:00Z", "to": "2025-03-15T00:00:00Z"},
    )
    assert windows(body) == [
        ("2025-01-10T00:00:00Z", "2025-02-01T05:00:00Z", 3),
        ("2025-02-01T05:00:00Z", "2025-03-01T05:00:00Z", 4),
    ]


async def test_group_by_and_subject_filters(client, acme, db, tokens):
    await store(
        db,
        acme,
        ("2025-06-10T10:00:00Z", "c1", {"tokens": 1, "model": "small", "region": "eu"}),
        ("2025-06-10T10:01:00Z", "c1", {"tokens": 2, "model": "large"}),
        ("2025-06-10T10:02:00Z", "c2", {"tokens": 4, "model": "small", "region": "us"}),
        ("2025-06-10T10:03:00Z", "c3", {"tokens": 8, "model": "small", "region": "eu"}),
    )
    span = {"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z", "window": "day"}

    def rows(body):
        return sorted(
            (row["subject"], json.dumps(row["group"], sort_keys=True), row["value"])
            for row in body["data"]
        )

    assert rows(await usage(client, acme, **span)) == [(None, "{}", 15)]
    assert rows(await usage(client, acme, group_by="model", **span)) == [
        (None, '{"model": "large"}', 2),
        (None, '{"model": "small"}', 13),
    ]
    # A missing property is a group of its own: null.
    assert rows(await usage(client, acme, group_by="region", subject=["c1", "c2"], **span)) == [
        ("c1", '{"region": "eu"}', 1),
        ("c1", '{"region": null}', 2),
        ("c2", '{"region": "us"}', 4),
    ]
    both = await usage(client, acme, group_by=["region", "model"], subject="c3", **span)
    assert rows(both) == [("c3", '{"model": "small", "region": "eu"}', 8)]


async def test_a_property_added_to_group_by_groups_from_then_on(client, acme, db):
    await create_meter(client, acme, group_by=["model"])
    await store(db, acme, ("2025-06-10T10:00:00Z", "c1", {"tokens": 1, "region": "eu"}))
    response = await client.patch(
        "/v1/meters/llm_tokens", json={"group_by": ["model", "region"]}, headers=acme.admin
    )
    assert response.status_code == 200, response.text
    async with db() as session, session.begin():
        await UsageEventRepository(session).insert_new(
            org_id=acme.org_id,
            source="api",
            events=[
                NewEvent(
                    id="later",
                    type="llm_tokens",
                    subject="c1",
                    time=at("2025-06-10T11:00:00Z"),
                    data_json='{"tokens": 2, "region": "eu"}',
                )
            ],
        )
    body = await usage(
        client,
        acme,
        group_by="region",
        window="day",
        **{"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z"},
    )
    assert sorted((row["group"]["region"] or "", row["value"]) for row in body["data"]) == [
        ("", 1),
        ("eu", 2),
    ]


async def test_gateway_requests_appear_as_api_requests_usage(client, acme, db):
    request = {"route": "demo", "method": "GET", "status": 200, "key_id": "k1"}
    await store(
        db,
        acme,
        ("2025-06-10T10:00:00Z", str(acme.org_id), request),
        ("2025-06-10T10:00:30Z", str(acme.org_id), request),
        ("2025-06-10T10:01:00Z", str(acme.org_id), {**request, "status": 429}),
        type_="api_requests",
        source="gateway",
    )
    body = await usage(
        client,
        acme,
        key="api_requests",
        group_by="status",
        window="hour",
        **{"from": "2025-06-10T10:00:00Z", "to": "2025-06-10T11:00:00Z"},
    )
    assert body["aggregation"] == "COUNT"
    assert sorted((row["group"]["status"], row["value"]) for row in body["data"]) == [
        (200, 2),
        (429, 1),
    ]


async def test_another_organisations_meter_is_not_found(client, acme, globex, db, tokens):
    await store(db, acme, ("2025-06-10T10:00:00Z", "c1", {"tokens": 1}))
    span = {"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z"}
    response = await client.get(
        "/v1/meters/llm_tokens/usage", params=span, headers=globex.key("read")
    )
    assert_problem(response, 404, "meter-not-found")
    # Its own api_requests meter shows none of acme's usage.
    mine = await usage(client, globex, key="api_requests", **span)
    assert mine["data"] == []


async def test_reading_usage_needs_the_read_scope(client, acme, tokens):
    span = {"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z"}
    response = await client.get(
        "/v1/meters/llm_tokens/usage", params=span, headers=acme.key("write")
    )
    assert_problem(response, 403)
    member = await client.get("/v1/meters/llm_tokens/usage", params=span, headers=acme.user())
    assert member.status_code == 200


@pytest.mark.parametrize(
    ("params", "where", "error_type"),
    [
        ({"window": "week"}, "window", None),
        ({"tz": "Mars/Olympus"}, "tz", "unknown_time_zone"),
        ({"tz": "../../etc/passwd"}, "tz", "unknown_time_zone"),
        ({"to": "2025-06-10T00:00:00Z"}, "to", "range"),
        ({"to": "2025-06-09T00:00:00Z"}, "to", "range"),
        ({"from": "2025-06-10T00:00:30Z"}, "from", "whole_minute"),
        ({"from": "yesterday"}, "from", None),
        ({"from": "2025-06-10T00:00:00"}, "from", None),  # no offset
        ({"group_by": "colour"}, "group_by", "unknown_group_by"),
        ({"window": "minute", "to": "2025-06-11T00:01:00Z"}, "to", "range_too_large"),
        ({"window": "hour", "to": "2025-07-12T00:00:00Z"}, "to", "range_too_large"),
        ({"window": "day", "to": "2026-07-16T00:00:00Z"}, "to", "range_too_large"),
        ({"subject": ["s"] * 101}, "subject", None),
    ],
)
async def test_bad_queries_are_422_problems_that_change_nothing(
    client, acme, db, tokens, params, where, error_type
):
    before = await database_state(db)
    query = {"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z", **params}
    response = await client.get(
        "/v1/meters/llm_tokens/usage", params=query, headers=acme.key("read")
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"][:2] == ["query", where], body
    if error_type is not None:
        assert body["errors"][0]["type"] == error_type, body
    assert await database_state(db) == before


async def test_from_and_to_are_required(client, acme, tokens):
    response = await client.get("/v1/meters/llm_tokens/usage", headers=acme.key("read"))
    body = assert_problem(response, 422, "validation-error")
    assert sorted(error["loc"][1] for error in body["errors"]) == ["from", "to"]


async def test_latest_is_the_value_of_the_greatest_time_then_id_across_batches(client, acme, db):
    await create_meter(client, acme, key="balance", aggregation="LATEST", value_property="amount")
    same_time = at("2025-06-10T10:00:30Z")
    # Sent newest id first, in separate transactions: the merge must compare (time, id).
    for event_id, amount in (("b", 2), ("a", 1), ("c", 3.25), ("a0", 9)):
        async with db() as session, session.begin():
            await UsageEventRepository(session).insert_new(
                org_id=acme.org_id,
                source="api",
                events=[
                    NewEvent(
                        id=event_id,
                        type="balance",
                        subject="c1",
                        time=same_time if event_id != "a0" else at("2025-06-10T10:00:10Z"),
                        data_json=json.dumps({"amount": amount}),
                    )
                ],
            )
    body = await usage(
        client,
        acme,
        key="balance",
        window="day",
        **{"from": "2025-06-10T00:00:00Z", "to": "2025-06-11T00:00:00Z"},
    )
    assert [row["value"] for row in body["data"]] == [3.25]
